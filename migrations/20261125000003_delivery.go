package migrations

// Delivery: every attempt of a delivery, when its next attempt is due, the
// doctors' push devices and the integrators' webhook endpoints.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: deliveryUp("TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY"), sqlite: deliveryUp("TIMESTAMP", "INTEGER PRIMARY KEY AUTOINCREMENT")}),
		steps(dialectSQL{
			pg: []string{`DROP TABLE webhook_endpoints`, `DROP TABLE devices`, `DROP TABLE delivery_attempts`,
				`ALTER TABLE deliveries DROP COLUMN attempt`, `ALTER TABLE deliveries DROP COLUMN next_attempt_at`,
				`ALTER TABLE deliveries DROP COLUMN provider`, `ALTER TABLE deliveries DROP COLUMN provider_message_id`},
			sqlite: []string{`DROP TABLE webhook_endpoints`, `DROP TABLE devices`, `DROP TABLE delivery_attempts`,
				`DROP INDEX deliveries_due`, `DROP INDEX deliveries_provider_message`,
				`ALTER TABLE deliveries DROP COLUMN attempt`, `ALTER TABLE deliveries DROP COLUMN next_attempt_at`,
				`ALTER TABLE deliveries DROP COLUMN provider`, `ALTER TABLE deliveries DROP COLUMN provider_message_id`},
		}))
}

func deliveryUp(ts, serial string) []string {
	return []string{
		`ALTER TABLE deliveries ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE deliveries ADD COLUMN next_attempt_at ` + ts,
		`ALTER TABLE deliveries ADD COLUMN provider TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE deliveries ADD COLUMN provider_message_id TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX deliveries_due ON deliveries (next_attempt_at)`,
		`CREATE INDEX deliveries_provider_message ON deliveries (provider, provider_message_id)`,
		`CREATE TABLE delivery_attempts (
	id                  ` + serial + `,
	delivery_id         TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
	attempt             INTEGER NOT NULL,
	provider            TEXT NOT NULL,
	provider_message_id TEXT NOT NULL DEFAULT '',
	outcome             TEXT NOT NULL,
	error               TEXT NOT NULL DEFAULT '',
	started_at          ` + ts + ` NOT NULL,
	finished_at         ` + ts + ` NOT NULL
)`,
		`CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt)`,
		`CREATE TABLE devices (
	token       TEXT PRIMARY KEY,
	doctor_id   TEXT NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
	platform    TEXT NOT NULL DEFAULT '',
	disabled_at ` + ts + `,
	disabled_reason TEXT NOT NULL DEFAULT '',
	created_at  ` + ts + ` NOT NULL,
	updated_at  ` + ts + ` NOT NULL
)`,
		`CREATE INDEX devices_doctor ON devices (doctor_id)`,
		`CREATE TABLE webhook_endpoints (
	id              TEXT PRIMARY KEY,
	doctor_id       TEXT REFERENCES doctors (id) ON DELETE CASCADE,
	clinic          TEXT,
	url             TEXT NOT NULL,
	secret          TEXT NOT NULL,
	previous_secret TEXT NOT NULL DEFAULT '',
	disabled_at     ` + ts + `,
	disabled_reason TEXT NOT NULL DEFAULT '',
	created_at      ` + ts + ` NOT NULL,
	updated_at      ` + ts + ` NOT NULL
)`,
		`CREATE INDEX webhook_endpoints_doctor ON webhook_endpoints (doctor_id)`,
		`CREATE INDEX webhook_endpoints_clinic ON webhook_endpoints (clinic)`,
	}
}
