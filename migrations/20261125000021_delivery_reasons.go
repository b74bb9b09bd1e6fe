package migrations

// Delivery reason codes. A delivery and each attempt carry a stable
// reason code; status_reason and delivery_attempts.error hold only the
// code's fixed message (and the provider's short error code). Until now
// they held the provider's error text, which can name internal addresses
// and the SMS account's id (in the Twilio path): existing rows get a code
// from their known fixed texts, and any other text is erased.
func init() {
	up := []string{
		`ALTER TABLE deliveries ADD COLUMN reason_code TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE delivery_attempts ADD COLUMN reason_code TEXT NOT NULL DEFAULT ''`,
		`UPDATE deliveries SET reason_code = CASE
	WHEN status_reason = 'doctor inactive' THEN 'doctor_inactive'
	WHEN status_reason = 'notification retracted' THEN 'notification_retracted'
	WHEN status_reason = 'notification superseded' THEN 'notification_superseded'
	WHEN status_reason = 'notification expired' THEN 'notification_expired'
	WHEN status_reason = 'opted out' THEN 'opted_out'
	WHEN status_reason = 'waiting for the doctor''s hourly SMS cap' THEN 'sms_cap'
	WHEN status_reason LIKE 'fallback after %' THEN 'fallback'
	WHEN status_reason LIKE 'stuck in sending %' THEN 'stuck_retried'
	WHEN status_reason LIKE 'provider error %' AND status IN ('failed', 'undelivered') THEN 'carrier_undelivered'
	ELSE 'provider_error' END
WHERE status_reason <> ''`,
		`UPDATE deliveries SET status_reason = '' WHERE reason_code = 'provider_error'`,
		`UPDATE delivery_attempts SET reason_code = 'provider_error', error = '' WHERE error <> ''`,
	}
	down := []string{
		`ALTER TABLE delivery_attempts DROP COLUMN reason_code`,
		`ALTER TABLE deliveries DROP COLUMN reason_code`,
	}
	Migrations.MustRegister(steps(dialectSQL{pg: up, sqlite: up}), steps(dialectSQL{pg: down, sqlite: down}))
}
