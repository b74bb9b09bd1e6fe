package router

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/msgerr"
	"github.com/rfd-notify/rfd/internal/platform/logging"
)

// Metadata keys the router adds to messages.
const (
	// AttemptsKey counts the handler attempts of a message in this delivery;
	// a poisoned message carries how many attempts it took.
	AttemptsKey = "rfd_attempts"
	// PoisonClassKey says why a message was poisoned: "permanent" or
	// "exhausted" (transient failures outlasted the retries).
	PoisonClassKey = "rfd_poison_class"
	// PoisonIDKey identifies one poisoning of a message (see poisonIDs).
	PoisonIDKey = "rfd_poison_id"
	// CloudEventIDKey is the CloudEvents id header; inbound events from other
	// systems carry it and it doubles as their correlation id.
	CloudEventIDKey = "ce_id"
)

// correlate makes sure every message has a correlation id (its own, else its
// CloudEvents id, else its message id) and puts it in the message context,
// where the logger and the outbox pick it up.
func correlate(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		id := middleware.MessageCorrelationID(msg)
		if id == "" {
			id = msg.Metadata.Get(CloudEventIDKey)
		}
		if id == "" {
			id = msg.UUID
		}
		middleware.SetCorrelationID(id, msg)
		msg.SetContext(logging.WithCorrelationID(msg.Context(), id))
		return h(msg)
	}
}

// detach keeps the values of the message context but not its cancellation.
// The subscriber cancels a message's context as soon as the router starts
// closing; a handler in the middle of its transaction would then roll back
// work it was about to commit. Shutdown means "finish in-flight work": each
// attempt stays bounded by the timeout middleware and the router's close
// timeout, and no new attempt starts once the router is closing.
func detach(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		msg.SetContext(context.WithoutCancel(msg.Context()))
		return h(msg)
	}
}

// countAttempts sits inside the retry middleware, so it sees every attempt.
func countAttempts(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		n, _ := strconv.Atoi(msg.Metadata.Get(AttemptsKey))
		msg.Metadata.Set(AttemptsKey, strconv.Itoa(n+1))
		return h(msg)
	}
}

// recoverPermanent turns a panic inside a handler into a permanent error. A
// panic on a message will panic again on every redelivery, so it belongs in
// the poison topic, not in an endless redelivery loop that holds up the
// partition behind it.
func recoverPermanent(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if r := recover(); r != nil {
				logging.FromContext(msg.Context()).ErrorContext(msg.Context(), "handler panicked",
					"message_id", msg.UUID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = msgerr.Permanentf("handler panicked: %v", r)
				out = nil
			}
		}()
		return h(msg)
	}
}

// Text errors of PostgreSQL: a string it cannot store. bun refuses a NUL in
// a string argument itself (the query it builds fails to parse), so these
// come from text that reaches the database some other way: \u0000 in a
// JSON document bound for jsonb, or invalid UTF-8 in text.
const (
	sqlStateCharacterNotInRepertoire = "22021" // invalid byte sequence for encoding
	sqlStateUntranslatableCharacter  = "22P05" // unsupported Unicode escape sequence
)

// permanentText is the safety net behind the decoders, which refuse text a
// database cannot store before any work is done. A failure on a message
// that carries such text (a NUL character or invalid UTF-8 in a string of
// its JSON payload or in a metadata value), or a failure in which the
// database refused text, will recur on every attempt: it is made
// permanent, so the message is poisoned at once instead of holding up the
// healthy messages behind it while it is retried.
func permanentText(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err == nil || msgerr.IsPermanent(err) {
			return out, err
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == sqlStateCharacterNotInRepertoire || pgErr.Code == sqlStateUntranslatableCharacter) {
			return out, msgerr.Permanentf("the database cannot store the message's text (SQLSTATE %s): %w", pgErr.Code, err)
		}
		if where := unstorableText(msg); where != "" {
			return out, msgerr.Permanentf("the message carries text no database can store (%s): %w", where, err)
		}
		return out, err
	}
}

// unstorableText says where msg carries text a database cannot store, or
// "" when it does not. It never quotes the text.
func unstorableText(msg *message.Message) string {
	for k, v := range msg.Metadata {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return "a metadata value"
		}
		if !utf8.ValidString(k) || strings.IndexByte(k, 0) >= 0 {
			return "a metadata key"
		}
	}
	flaw, err := events.Scan(msg.Payload, events.ScanOptions{})
	if err != nil || flaw == nil {
		// A payload that is not JSON is its decoder's to refuse.
		return ""
	}
	return "payload " + flaw.Pointer() + " " + flaw.Reason
}

// classify records on the message why it is about to be poisoned. It also
// gives the message back the context it arrived with: the inner middleware
// (timeout, retry) leave a cancelled context on it, and the poison queue
// publishes with the message's context.
func classify(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		out, err := h(msg)
		msg.SetContext(ctx)
		if err != nil {
			class := "exhausted"
			if msgerr.IsPermanent(err) {
				class = "permanent"
			}
			msg.Metadata.Set(PoisonClassKey, class)
		}
		return out, err
	}
}

// poisonFilter decides which failed messages go to the poison topic. A
// message is NOT poisoned when the router is shutting down (it is redelivered
// to the next process) or when a dependency such as the database is down: an
// outage would otherwise poison every message in flight, although none of
// them is bad. Those are nacked and come back when the dependency does.
func poisonFilter(closing func() bool, dependencies func(context.Context) error) func(error) bool {
	return func(err error) bool {
		if msgerr.IsPermanent(err) {
			return true
		}
		if closing() {
			return false
		}
		if dependencies != nil {
			ctx, cancel := context.WithTimeout(context.Background(), dependencyCheckTimeout)
			defer cancel()
			if dependencies(ctx) != nil {
				return false
			}
		}
		return true
	}
}
