package migrations

// The referral domain: doctors and their preferences and delegations,
// checkups with their result versions, orders with their timelines, login
// audit, notifications and their deliveries, and notification intents
// waiting for a doctor the service does not know yet.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: domainUp("TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY", "BOOLEAN", "JSONB"), sqlite: domainUp("TIMESTAMP", "INTEGER PRIMARY KEY AUTOINCREMENT", "BOOLEAN", "TEXT")}),
		steps(dialectSQL{pg: domainDown, sqlite: domainDown}))
}

var domainDown = []string{
	`DROP TABLE pending_notifications`,
	`DROP TABLE deliveries`,
	`DROP TABLE notifications`,
	`DROP TABLE login_audit`,
	`DROP TABLE order_events`,
	`DROP TABLE order_doctors`,
	`DROP TABLE orders`,
	`DROP TABLE result_versions`,
	`DROP TABLE checkup_doctors`,
	`DROP TABLE checkups`,
	`DROP TABLE delegations`,
	`DROP TABLE doctor_preferences`,
	`DROP TABLE doctors`,
}

func domainUp(ts, serial, boolean, jsonType string) []string {
	return []string{
		`CREATE TABLE doctors (
	id               TEXT PRIMARY KEY,
	external_user_id TEXT NOT NULL UNIQUE,
	name             TEXT NOT NULL,
	licence_number   TEXT NOT NULL DEFAULT '',
	specialty        TEXT NOT NULL DEFAULT '',
	clinic           TEXT NOT NULL DEFAULT '',
	email            TEXT NOT NULL DEFAULT '',
	phone            TEXT NOT NULL DEFAULT '',
	locale           TEXT NOT NULL DEFAULT 'en',
	time_zone        TEXT NOT NULL DEFAULT 'UTC',
	active           ` + boolean + ` NOT NULL DEFAULT TRUE,
	notification_seq BIGINT NOT NULL DEFAULT 0,
	profile_version  ` + ts + ` NOT NULL,
	created_at       ` + ts + ` NOT NULL,
	updated_at       ` + ts + ` NOT NULL
)`,
		`CREATE INDEX doctors_clinic ON doctors (clinic)`,
		`CREATE INDEX doctors_specialty ON doctors (specialty)`,
		`CREATE TABLE doctor_preferences (
	doctor_id      TEXT PRIMARY KEY REFERENCES doctors (id) ON DELETE CASCADE,
	channels       ` + jsonType + ` NOT NULL,
	quiet_start    TEXT NOT NULL DEFAULT '',
	quiet_end      TEXT NOT NULL DEFAULT '',
	digest         TEXT NOT NULL DEFAULT 'off',
	fallback_order ` + jsonType + ` NOT NULL,
	updated_at     ` + ts + ` NOT NULL
)`,
		`CREATE TABLE delegations (
	id                 TEXT PRIMARY KEY,
	doctor_id          TEXT NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
	covering_doctor_id TEXT NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
	starts_at          ` + ts + ` NOT NULL,
	ends_at            ` + ts + ` NOT NULL,
	created_at         ` + ts + ` NOT NULL
)`,
		`CREATE INDEX delegations_doctor ON delegations (doctor_id, starts_at, ends_at)`,
		`CREATE TABLE checkups (
	id           TEXT PRIMARY KEY,
	order_id     TEXT NOT NULL DEFAULT '',
	patient_ref  TEXT NOT NULL,
	status       TEXT NOT NULL,
	scheduled_at ` + ts + `,
	completed_at ` + ts + `,
	last_event_at ` + ts + ` NOT NULL,
	created_at   ` + ts + ` NOT NULL,
	updated_at   ` + ts + ` NOT NULL
)`,
		`CREATE INDEX checkups_order ON checkups (order_id)`,
		`CREATE TABLE checkup_doctors (
	checkup_id         TEXT NOT NULL REFERENCES checkups (id) ON DELETE CASCADE,
	doctor_external_id TEXT NOT NULL,
	PRIMARY KEY (checkup_id, doctor_external_id)
)`,
		`CREATE INDEX checkup_doctors_doctor ON checkup_doctors (doctor_external_id)`,
		`CREATE TABLE result_versions (
	checkup_id  TEXT NOT NULL REFERENCES checkups (id) ON DELETE CASCADE,
	version     INTEGER NOT NULL,
	status      TEXT NOT NULL,
	critical    ` + boolean + ` NOT NULL DEFAULT FALSE,
	result      ` + jsonType + ` NOT NULL,
	event_id    TEXT NOT NULL,
	occurred_at ` + ts + ` NOT NULL,
	received_at ` + ts + ` NOT NULL,
	PRIMARY KEY (checkup_id, version)
)`,
		`CREATE TABLE orders (
	id           TEXT PRIMARY KEY,
	patient_ref  TEXT NOT NULL,
	status       TEXT NOT NULL,
	last_seq     BIGINT NOT NULL,
	last_event_at ` + ts + ` NOT NULL,
	created_at   ` + ts + ` NOT NULL,
	updated_at   ` + ts + ` NOT NULL
)`,
		`CREATE TABLE order_doctors (
	order_id           TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
	doctor_external_id TEXT NOT NULL,
	PRIMARY KEY (order_id, doctor_external_id)
)`,
		`CREATE INDEX order_doctors_doctor ON order_doctors (doctor_external_id)`,
		`CREATE TABLE order_events (
	order_id    TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
	seq         BIGINT NOT NULL,
	status      TEXT NOT NULL,
	applied     ` + boolean + ` NOT NULL,
	event_id    TEXT NOT NULL,
	occurred_at ` + ts + ` NOT NULL,
	received_at ` + ts + ` NOT NULL,
	PRIMARY KEY (order_id, seq)
)`,
		`CREATE TABLE login_audit (
	id                 ` + serial + `,
	event_id           TEXT NOT NULL UNIQUE,
	doctor_external_id TEXT NOT NULL,
	success            ` + boolean + ` NOT NULL,
	occurred_at        ` + ts + ` NOT NULL,
	source_ip          TEXT NOT NULL,
	user_agent         TEXT NOT NULL DEFAULT '',
	method             TEXT NOT NULL,
	recorded_at        ` + ts + ` NOT NULL
)`,
		`CREATE INDEX login_audit_doctor ON login_audit (doctor_external_id, occurred_at)`,
		`CREATE TABLE notifications (
	id              TEXT PRIMARY KEY,
	doctor_id       TEXT NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
	seq             BIGINT NOT NULL,
	dedup_key       TEXT NOT NULL UNIQUE,
	type            TEXT NOT NULL,
	category        TEXT NOT NULL,
	priority        TEXT NOT NULL,
	title           TEXT NOT NULL,
	body            TEXT NOT NULL,
	data            ` + jsonType + ` NOT NULL,
	checkup_id      TEXT,
	result_version  INTEGER,
	order_id        TEXT,
	source_event_id TEXT NOT NULL,
	on_behalf_of    TEXT,
	state           TEXT NOT NULL DEFAULT 'active',
	state_reason    TEXT NOT NULL DEFAULT '',
	superseded_by   TEXT,
	send_at         ` + ts + ` NOT NULL,
	expires_at      ` + ts + `,
	created_at      ` + ts + ` NOT NULL,
	read_at         ` + ts + `,
	acknowledged_at ` + ts + `,
	acknowledged_by TEXT,
	ack_note        TEXT,
	UNIQUE (doctor_id, seq)
)`,
		`CREATE INDEX notifications_doctor_id ON notifications (doctor_id, id)`,
		`CREATE INDEX notifications_checkup ON notifications (checkup_id, state)`,
		`CREATE INDEX notifications_order ON notifications (order_id)`,
		`CREATE TABLE deliveries (
	id                  TEXT PRIMARY KEY,
	notification_id     TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
	channel             TEXT NOT NULL,
	status              TEXT NOT NULL,
	status_reason       TEXT NOT NULL DEFAULT '',
	send_at             ` + ts + ` NOT NULL,
	created_at          ` + ts + ` NOT NULL,
	updated_at          ` + ts + ` NOT NULL,
	UNIQUE (notification_id, channel)
)`,
		`CREATE INDEX deliveries_status ON deliveries (status, updated_at)`,
		`CREATE TABLE pending_notifications (
	dedup_key          TEXT PRIMARY KEY,
	doctor_external_id TEXT NOT NULL,
	intent             ` + jsonType + ` NOT NULL,
	source_event_id    TEXT NOT NULL,
	received_at        ` + ts + ` NOT NULL,
	reported_at        ` + ts + `
)`,
		`CREATE INDEX pending_notifications_doctor ON pending_notifications (doctor_external_id)`,
	}
}
