package events

// Each decoder returns a *SyntaxError when the payload is not one JSON value
// and a *ValidationError when it breaks the schema (or has a field the Go
// type does not know). Both are permanent: the same payload fails the same
// way on every attempt. Neither error quotes the payload.

// DecodeCheckupEvent decodes and validates a checkup-events payload.
func DecodeCheckupEvent(payload []byte) (CheckupEvent, error) {
	ev, err := decode[CheckupEvent](checkupContract, payload)
	if err != nil {
		return CheckupEvent{}, err
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	if ev.ScheduledAt != nil {
		t := ev.ScheduledAt.UTC()
		ev.ScheduledAt = &t
	}
	return ev, nil
}

// DecodeOrderHistoryEvent decodes and validates an order-history-events
// payload.
func DecodeOrderHistoryEvent(payload []byte) (OrderHistoryEvent, error) {
	ev, err := decode[OrderHistoryEvent](orderHistoryContract, payload)
	if err != nil {
		return OrderHistoryEvent{}, err
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	return ev, nil
}

// DecodeUserCreated decodes and validates a user-created payload.
func DecodeUserCreated(payload []byte) (UserCreated, error) {
	ev, err := decode[UserCreated](userCreatedContract, payload)
	if err != nil {
		return UserCreated{}, err
	}
	ev.UpdatedAt = ev.UpdatedAt.UTC()
	return ev, nil
}

// DecodeInternalLogin decodes and validates an internal-login payload.
func DecodeInternalLogin(payload []byte) (InternalLogin, error) {
	ev, err := decode[InternalLogin](internalLoginContract, payload)
	if err != nil {
		return InternalLogin{}, err
	}
	ev.OccurredAt = ev.OccurredAt.UTC()
	return ev, nil
}

// DecodeSendNotification decodes and validates a send-notification payload.
func DecodeSendNotification(payload []byte) (SendNotification, error) {
	cmd, err := decode[SendNotification](sendNotificationContract, payload)
	if err != nil {
		return SendNotification{}, err
	}
	cmd.SendAt = cmd.SendAt.UTC()
	return cmd, nil
}

// DecodeReportMail decodes and validates a report-mail payload.
func DecodeReportMail(payload []byte) (ReportMail, error) {
	return decode[ReportMail](reportMailContract, payload)
}

// The encoders return the JSON payload, or a *ValidationError when the value
// breaks its own schema (a required field left empty, an unknown enum value):
// a producer's bug is caught where it is made.

// Encode returns the checkup-events payload of e.
func (e CheckupEvent) Encode() ([]byte, error) { return encode(checkupContract, e) }

// Encode returns the order-history-events payload of e.
func (e OrderHistoryEvent) Encode() ([]byte, error) { return encode(orderHistoryContract, e) }

// Encode returns the user-created payload of e.
func (e UserCreated) Encode() ([]byte, error) { return encode(userCreatedContract, e) }

// Encode returns the internal-login payload of e.
func (e InternalLogin) Encode() ([]byte, error) { return encode(internalLoginContract, e) }

// Encode returns the send-notification payload of e.
func (e SendNotification) Encode() ([]byte, error) { return encode(sendNotificationContract, e) }

// Encode returns the report-mail payload of e.
func (e ReportMail) Encode() ([]byte, error) { return encode(reportMailContract, e) }
