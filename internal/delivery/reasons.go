package delivery

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/rfd-notify/rfd/internal/delivery/channels"
	"github.com/rfd-notify/rfd/internal/delivery/channels/push"
	"github.com/rfd-notify/rfd/internal/delivery/channels/sms"
)

// Reason codes say why a delivery is where it is. They are part of the API
// contract: stable, few, and free of anything a provider said. A
// provider's own error text can carry internal addresses, account ids
// (the Twilio path names the Account SID) or the recipient's address, so
// it goes to the log only; the database and the API keep the code and the
// fixed message of ReasonMessage.
const (
	// Suppressed: the delivery was not sent.
	ReasonDoctorInactive = "doctor_inactive"
	ReasonRetracted      = "notification_retracted"
	ReasonSuperseded     = "notification_superseded"
	ReasonExpired        = "notification_expired"
	ReasonOptedOut       = "opted_out"

	// Queued: it waits.
	ReasonSMSCap       = "sms_cap"
	ReasonFallback     = "fallback"
	ReasonStuckRetried = "stuck_retried"

	// A failed attempt (a retry is queued with the same code) or the final
	// failure.
	ReasonNotConfigured       = "not_configured"
	ReasonNoDestination       = "no_destination"
	ReasonInvalidDestination  = "invalid_destination"
	ReasonUnsubscribed        = "unsubscribed"
	ReasonProviderRejected    = "provider_rejected"
	ReasonProviderUnavailable = "provider_unavailable"
	ReasonRateLimited         = "rate_limited"
	ReasonTimeout             = "timeout"
	ReasonCarrierUndelivered  = "carrier_undelivered"
	ReasonInternal            = "internal_error"
	// ReasonProviderError is a failure recorded before reason codes
	// existed, whose cause is no longer known.
	ReasonProviderError = "provider_error"
)

// reasonMessages are the only texts a caller sees about a delivery.
var reasonMessages = map[string]string{
	ReasonDoctorInactive:      "The doctor is inactive.",
	ReasonRetracted:           "The notification was retracted.",
	ReasonSuperseded:          "The notification was superseded by a newer result.",
	ReasonExpired:             "The notification expired before it could be sent.",
	ReasonOptedOut:            "The doctor opted out of this channel for this category.",
	ReasonSMSCap:              "Waiting for the doctor's hourly SMS cap.",
	ReasonFallback:            "Queued as a fallback after another channel failed.",
	ReasonStuckRetried:        "Retried after an interrupted attempt.",
	ReasonNotConfigured:       "The channel is not configured on this service.",
	ReasonNoDestination:       "The doctor has no address, device or endpoint for this channel.",
	ReasonInvalidDestination:  "The provider refused the address, number, device or endpoint.",
	ReasonUnsubscribed:        "The recipient has unsubscribed from messages at the provider.",
	ReasonProviderRejected:    "The provider rejected the message.",
	ReasonProviderUnavailable: "The provider was unavailable.",
	ReasonRateLimited:         "The provider's rate limit was reached.",
	ReasonTimeout:             "The provider did not answer in time.",
	ReasonCarrierUndelivered:  "The carrier could not deliver the message.",
	ReasonInternal:            "The message could not be prepared.",
	ReasonProviderError:       "The provider reported an error.",
}

// ReasonCodes lists every reason code, for the API's enum.
var ReasonCodes = []string{
	ReasonDoctorInactive, ReasonRetracted, ReasonSuperseded, ReasonExpired, ReasonOptedOut,
	ReasonSMSCap, ReasonFallback, ReasonStuckRetried,
	ReasonNotConfigured, ReasonNoDestination, ReasonInvalidDestination, ReasonUnsubscribed, ReasonProviderRejected,
	ReasonProviderUnavailable, ReasonRateLimited, ReasonTimeout, ReasonCarrierUndelivered, ReasonInternal, ReasonProviderError,
}

// ReasonMessage is the sanitised message of a reason code; "" for none.
func ReasonMessage(code string) string {
	if code == "" {
		return ""
	}
	if m, ok := reasonMessages[code]; ok {
		return m
	}
	return reasonMessages[ReasonProviderError]
}

// Classify maps a send error to its reason code.
func Classify(err error) string {
	f, ok := channels.AsFailure(err)
	if !ok {
		if errors.Is(err, errNotConfigured) {
			return ReasonNotConfigured
		}
		return ReasonProviderUnavailable
	}
	switch f.Code {
	case "not_configured", "config", "auth", push.ErrThirdPartyAuth:
		return ReasonNotConfigured
	case "no_address", "no_device", "no_endpoint":
		return ReasonNoDestination
	case strconv.Itoa(sms.ErrCodeInvalidTo), strconv.Itoa(sms.ErrCodeNotMobile),
		push.ErrUnregistered, push.ErrInvalidArgument, push.ErrSenderIDMismatch,
		"invalid_endpoint", "blocked_address", "gone", "redirect",
		"550", "551", "553":
		return ReasonInvalidDestination
	case strconv.Itoa(sms.ErrCodeUnsubscribed):
		return ReasonUnsubscribed
	case "rate_limited", "http_429", push.ErrQuotaExceeded:
		return ReasonRateLimited
	case "timeout":
		return ReasonTimeout
	case "template", "template_data", "encode", "invalid_message", "unknown_channel":
		return ReasonInternal
	}
	if f.Permanent {
		return ReasonProviderRejected
	}
	return ReasonProviderUnavailable
}

// providerCode keeps a provider's error code ("21211", "UNREGISTERED",
// "550") when it looks like one: operators find it in the database next to
// the reason; anything else a provider put there is dropped.
var providerCode = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`)

// reasonText is what the delivery row stores for code: its message, plus
// the provider's code (kept out of the API) when there is one.
func reasonText(code, provider string) string {
	msg := ReasonMessage(code)
	if provider = strings.TrimSpace(provider); provider != "" && providerCode.MatchString(provider) {
		msg += " [" + provider + "]"
	}
	return msg
}
