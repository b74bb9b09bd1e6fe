package migrations

// Digests and weekly summaries: one row per doctor and digest period (or
// week), inserted by the job in the transaction that makes the
// notification, so a period is summed up once however often the job runs;
// and the doctor's opt-out of the weekly summary.
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: digestsUp("TIMESTAMPTZ"), sqlite: digestsUp("TIMESTAMP")}),
		steps(dialectSQL{pg: digestsDown, sqlite: digestsDown}))
}

var digestsDown = []string{
	`ALTER TABLE doctor_preferences DROP COLUMN weekly_summary`,
	`DROP TABLE weekly_summaries`,
	`DROP TABLE digests`,
}

func digestsUp(ts string) []string {
	return []string{
		`CREATE TABLE digests (
	doctor_id       TEXT NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
	period_end      ` + ts + ` NOT NULL,
	items           INTEGER NOT NULL,
	notification_id TEXT NOT NULL DEFAULT '',
	created_at      ` + ts + ` NOT NULL,
	PRIMARY KEY (doctor_id, period_end)
)`,
		`CREATE TABLE weekly_summaries (
	doctor_id       TEXT NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
	week_start      ` + ts + ` NOT NULL,
	notification_id TEXT NOT NULL DEFAULT '',
	created_at      ` + ts + ` NOT NULL,
	PRIMARY KEY (doctor_id, week_start)
)`,
		`ALTER TABLE doctor_preferences ADD COLUMN weekly_summary BOOLEAN NOT NULL DEFAULT TRUE`,
	}
}
