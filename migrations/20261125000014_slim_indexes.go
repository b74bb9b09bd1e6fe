package migrations

// Slimmer indexes on the two tables every referral event writes to. Each
// index is one more insert per row on the hot path, so an index now only
// holds the rows its queries look for:
//   - notifications_doctor_id (doctor_id, id) duplicated the leading column
//     of UNIQUE (doctor_id, seq), and id is the primary key: dropped;
//   - notifications_critical: only critical notifications (the escalation
//     ladder and the timeliness report), by created_at;
//   - deliveries_due: only deliveries with a next attempt scheduled (the
//     scheduler's IS NOT NULL query); most never have one;
//   - deliveries_provider_message: only deliveries a provider has answered
//     with a message id (the SMS status callbacks);
//   - deliveries_status: only deliveries in sending (the stuck sweeper).
func init() {
	up := []string{
		`DROP INDEX notifications_doctor_id`,
		`DROP INDEX notifications_critical`,
		`CREATE INDEX notifications_critical ON notifications (created_at) WHERE priority = 'critical'`,
		`DROP INDEX deliveries_due`,
		`CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL`,
		`DROP INDEX deliveries_provider_message`,
		`CREATE INDEX deliveries_provider_message ON deliveries (provider, provider_message_id) WHERE provider_message_id <> ''`,
		`DROP INDEX deliveries_status`,
		`CREATE INDEX deliveries_sending ON deliveries (updated_at) WHERE status = 'sending'`,
	}
	down := []string{
		`DROP INDEX deliveries_sending`,
		`CREATE INDEX deliveries_status ON deliveries (status, updated_at)`,
		`DROP INDEX deliveries_provider_message`,
		`CREATE INDEX deliveries_provider_message ON deliveries (provider, provider_message_id)`,
		`DROP INDEX deliveries_due`,
		`CREATE INDEX deliveries_due ON deliveries (next_attempt_at)`,
		`DROP INDEX notifications_critical`,
		`CREATE INDEX notifications_critical ON notifications (priority, acknowledged_at, created_at)`,
		`CREATE INDEX notifications_doctor_id ON notifications (doctor_id, id)`,
	}
	Migrations.MustRegister(steps(dialectSQL{pg: up, sqlite: up}), steps(dialectSQL{pg: down, sqlite: down}))
}
