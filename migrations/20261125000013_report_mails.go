package migrations

// Report e-mails: one row per report, period and recipient, stored by the
// cron job in the transaction that publishes its report-mail command, so a
// week's report is sent once however often the job runs; the worker marks
// it sent. body is the report as JSON (ids and times, no patient data).
func init() {
	Migrations.MustRegister(steps(dialectSQL{pg: reportMailsUp("TIMESTAMPTZ"), sqlite: reportMailsUp("TIMESTAMP")}),
		steps(dialectSQL{pg: reportMailsDown, sqlite: reportMailsDown}))
}

var reportMailsDown = []string{`DROP TABLE report_mails`}

func reportMailsUp(ts string) []string {
	return []string{
		`CREATE TABLE report_mails (
	id           TEXT PRIMARY KEY,
	report       TEXT NOT NULL,
	period_start ` + ts + ` NOT NULL,
	period_end   ` + ts + ` NOT NULL,
	recipient    TEXT NOT NULL,
	body         TEXT NOT NULL,
	status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	message_id   TEXT NOT NULL DEFAULT '',
	created_at   ` + ts + ` NOT NULL,
	sent_at      ` + ts + `
)`,
	}
}
