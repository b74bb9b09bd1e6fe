package migrations

// The REST API: integrators' and operators' API keys (only their SHA-256
// hash is stored), the audit log of every API read of patient data, and the
// index the order list pages on.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: apiUp("TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY", "JSONB"), sqlite: apiUp("TIMESTAMP", "INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT")}),
		steps(dialectSQL{pg: apiDown, sqlite: apiDown}))
}

var apiDown = []string{
	`DROP INDEX orders_created`,
	`DROP TABLE audit_log`,
	`DROP TABLE api_keys`,
}

func apiUp(ts, serial, jsonType string) []string {
	return []string{
		`CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	prefix       TEXT NOT NULL,
	hash         TEXT NOT NULL UNIQUE,
	scopes       TEXT NOT NULL,
	created_at   ` + ts + ` NOT NULL,
	expires_at   ` + ts + `,
	revoked_at   ` + ts + `,
	last_used_at ` + ts + `
)`,
		`CREATE TABLE audit_log (
	id          ` + serial + `,
	occurred_at ` + ts + ` NOT NULL,
	actor_type  TEXT NOT NULL,
	actor_id    TEXT NOT NULL,
	action      TEXT NOT NULL,
	object_type TEXT NOT NULL,
	object_id   TEXT NOT NULL DEFAULT '',
	outcome     TEXT NOT NULL,
	source_ip   TEXT NOT NULL DEFAULT '',
	user_agent  TEXT NOT NULL DEFAULT '',
	detail      ` + jsonType + `
)`,
		`CREATE INDEX audit_log_actor ON audit_log (actor_type, actor_id, occurred_at)`,
		`CREATE INDEX audit_log_object ON audit_log (object_type, object_id, occurred_at)`,
		`CREATE INDEX orders_created ON orders (created_at, id)`,
	}
}
