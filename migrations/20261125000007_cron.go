package migrations

// The cron: one row per (job, slot) a replica claimed, so each slot of
// each job runs once however many replicas run `rfd cron`; and the
// critical-result escalation ladder, whose timers live here so they
// survive restarts, with every step it took.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: cronUp("TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY"), sqlite: cronUp("TIMESTAMP", "INTEGER PRIMARY KEY AUTOINCREMENT")}),
		steps(dialectSQL{pg: cronDown, sqlite: cronDown}))
}

var cronDown = []string{
	`DROP INDEX notifications_critical`,
	`DROP TABLE escalation_steps`,
	`DROP TABLE escalations`,
	`DROP TABLE cron_runs`,
}

func cronUp(ts, serial string) []string {
	return []string{
		`CREATE TABLE cron_runs (
	job         TEXT NOT NULL,
	slot        ` + ts + ` NOT NULL,
	instance    TEXT NOT NULL,
	started_at  ` + ts + ` NOT NULL,
	finished_at ` + ts + `,
	status      TEXT NOT NULL DEFAULT 'running',
	error       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (job, slot)
)`,
		`CREATE INDEX cron_runs_started ON cron_runs (started_at)`,
		`CREATE TABLE escalations (
	notification_id TEXT PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
	level           INTEGER NOT NULL DEFAULT 0,
	state           TEXT NOT NULL DEFAULT 'active',
	next_at         ` + ts + ` NOT NULL,
	created_at      ` + ts + ` NOT NULL,
	updated_at      ` + ts + ` NOT NULL
)`,
		`CREATE INDEX escalations_due ON escalations (state, next_at)`,
		`CREATE TABLE escalation_steps (
	id              ` + serial + `,
	notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
	level           INTEGER NOT NULL,
	kind            TEXT NOT NULL,
	channel         TEXT NOT NULL DEFAULT '',
	doctor_id       TEXT NOT NULL DEFAULT '',
	escalated_notification_id TEXT NOT NULL DEFAULT '',
	at              ` + ts + ` NOT NULL,
	UNIQUE (notification_id, level)
)`,
		`CREATE INDEX notifications_critical ON notifications (priority, acknowledged_at, created_at)`,
	}
}
