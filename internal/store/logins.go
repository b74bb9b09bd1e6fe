package store

import (
	"context"
	"fmt"
	"time"
)

// LoginAuditExecutor holds the statements on login_audit: doctors' logins
// as user management reports them, append-only.
type LoginAuditExecutor interface {
	LoginAuditInsert(ctx context.Context, params *LoginAuditInsertParams) (bool, error)
	LoginAuditCountSuccesses(ctx context.Context, params *LoginAuditCountSuccessesParams) (LoginSuccesses, error)
	LoginAuditCountFailures(ctx context.Context, params *LoginAuditCountFailuresParams) (int, error)
}

// LoginAuditInsertParams is one login, event EventID, recorded at
// RecordedAt.
type LoginAuditInsertParams struct {
	EventID          string
	DoctorExternalID string
	Success          bool
	OccurredAt       time.Time
	SourceIP         string
	UserAgent        string
	Method           string
	RecordedAt       time.Time
}

// LoginAuditCountSuccessesParams asks for the doctor's successful logins
// in [From, To), other than event ExceptEventID, and how many of them came
// from SourceIP.
type LoginAuditCountSuccessesParams struct {
	DoctorExternalID string
	SourceIP         string
	ExceptEventID    string
	From             time.Time
	To               time.Time
}

// LoginSuccesses counts successful logins: All of them, and SameIP those
// from the address asked about.
type LoginSuccesses struct {
	All    int
	SameIP int
}

// LoginAuditCountFailuresParams asks for the doctor's failed logins in
// (After, Until].
type LoginAuditCountFailuresParams struct {
	DoctorExternalID string
	After            time.Time
	Until            time.Time
}

// LoginAuditInsert reports whether the login was new; an event recorded
// already is not recorded again.
func (q *Queries) LoginAuditInsert(ctx context.Context, params *LoginAuditInsertParams) (bool, error) {
	p := params
	res, err := q.db.NewRaw(`INSERT INTO login_audit (event_id, doctor_external_id, success, occurred_at, source_ip, user_agent, method, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		p.EventID, p.DoctorExternalID, p.Success, p.OccurredAt, p.SourceIP, p.UserAgent, p.Method, p.RecordedAt).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("audit login: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("audit login: %w", err)
	}
	return n > 0, nil
}

func (q *Queries) LoginAuditCountSuccesses(ctx context.Context, params *LoginAuditCountSuccessesParams) (LoginSuccesses, error) {
	var s LoginSuccesses
	err := q.db.NewRaw(`SELECT
	COUNT(*),
	COALESCE(SUM(CASE WHEN source_ip = ? THEN 1 ELSE 0 END), 0)
FROM login_audit
WHERE doctor_external_id = ? AND success AND event_id <> ? AND occurred_at >= ? AND occurred_at < ?`,
		params.SourceIP, params.DoctorExternalID, params.ExceptEventID, params.From, params.To).Scan(ctx, &s.All, &s.SameIP)
	if err != nil {
		return LoginSuccesses{}, fmt.Errorf("login history: %w", err)
	}
	return s, nil
}

func (q *Queries) LoginAuditCountFailures(ctx context.Context, params *LoginAuditCountFailuresParams) (int, error) {
	var failures int
	err := q.db.NewRaw(`SELECT COUNT(*) FROM login_audit WHERE doctor_external_id = ? AND NOT success AND occurred_at > ? AND occurred_at <= ?`,
		params.DoctorExternalID, params.After, params.Until).Scan(ctx, &failures)
	if err != nil {
		return 0, fmt.Errorf("count failed logins: %w", err)
	}
	return failures, nil
}
