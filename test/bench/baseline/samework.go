package baseline

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/events"
	"github.com/rfd-notify/rfd/internal/core/notify"
)

// StartSameWork starts a pipeline that does by hand, one transaction per
// event, every read and write the service's checkup-events consumer does
// for the events of MakeEvents, on the service's own schema (pool is a
// migrated service database whose doctors SeedDoctors made): the inbox
// row, the checkup upsert, its referring doctor, the result version, the
// recipient read, the doctor's sequence number with the full notification
// row, its in-app and email deliveries (the defaults of the seeded
// doctors' preferences) and their two send-notification commands in the
// outbox. It skips what is not database work: the contract's schema
// validation, template rendering and relaying the outbox to Kafka.
//
// It is not the issues' baseline (Start): it says how much of the gap to
// that baseline is the work the service is asked to do, and how much the
// way the service does it.
func StartSameWork(ctx context.Context, brokers []string, topic, group string, pool *pgxpool.Pool) (*Pipeline, error) {
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS same_work_outbox `+outboxColumns); err != nil {
		return nil, fmt.Errorf("same-work outbox: %w", err)
	}
	return start(brokers, topic, group, pool, (*Pipeline).processSameWork)
}

func (c *Pipeline) processSameWork(ctx context.Context, r *kgo.Record) error {
	id, metadata, ev, err := decode(r)
	if err != nil {
		return err
	}
	result, err := json.Marshal(ev.Result)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	return c.inTx(ctx, id, now, func(tx pgx.Tx) error {
		return sameWork(ctx, tx, id, ev, result, metadata, now)
	})
}

// sameWork is the work of processSameWork after the inbox row.
func sameWork(ctx context.Context, tx pgx.Tx, id string, ev events.CheckupEvent, result, metadata []byte, now time.Time) error {
	ext := ev.ReferringDoctors[0].ExternalUserID
	rows, err := tx.Query(ctx, `SELECT version FROM result_versions WHERE checkup_id = $1`, ev.CheckupID)
	if err != nil {
		return fmt.Errorf("result versions: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("result versions: %w", err)
	}
	if len(versions) > 0 {
		return nil // the events carry one version each: nothing more to do
	}
	if _, err := tx.Exec(ctx, `INSERT INTO checkups (id, order_id, patient_ref, status, scheduled_at, completed_at, last_event_at, created_at, updated_at)
VALUES ($1, $2, $3, 'resulted', NULL, NULL, $4, $5, $5)
ON CONFLICT (id) DO UPDATE SET
	status = CASE WHEN excluded.last_event_at >= checkups.last_event_at THEN excluded.status ELSE checkups.status END,
	last_event_at = GREATEST(excluded.last_event_at, checkups.last_event_at),
	updated_at = excluded.updated_at`,
		ev.CheckupID, ev.OrderID, ev.Patient.Ref, ev.OccurredAt.UTC(), now); err != nil {
		return fmt.Errorf("checkup: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO checkup_doctors (checkup_id, doctor_external_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		ev.CheckupID, ext); err != nil {
		return fmt.Errorf("checkup doctor: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO result_versions (checkup_id, version, status, critical, result, event_id, occurred_at, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		ev.CheckupID, ev.Result.Version, ev.Result.Status, ev.Result.Critical, string(result), id, ev.OccurredAt.UTC(), now); err != nil {
		return fmt.Errorf("result version: %w", err)
	}

	intent := notify.Intent{Key: fmt.Sprintf("checkup/%s/result/%d", ev.CheckupID, ev.Result.Version)}
	// Read as the service reads a recipient (locale and preferences
	// included), although the seeded doctors' defaults are known here.
	var (
		doctorID, name, locale string
		channels               []byte
		notified               bool
	)
	err = tx.QueryRow(ctx, `SELECT d.id, d.name, d.locale, p.channels,
	EXISTS (SELECT 1 FROM notifications n WHERE n.dedup_key = $2 || d.id)
FROM doctors d LEFT JOIN doctor_preferences p ON p.doctor_id = d.id WHERE d.external_user_id = $1`,
		ext, notify.DedupKey(intent, "", "")).Scan(&doctorID, &name, &locale, &channels, &notified)
	if err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	if notified {
		return nil
	}
	dedup := notify.DedupKey(intent, doctorID, "")
	nid := notify.NotificationID(dedup)
	data, err := json.Marshal(map[string]string{"DoctorName": name, "PatientName": ev.Patient.DisplayName, "PatientRef": ev.Patient.Ref,
		"CheckupID": ev.CheckupID, "OrderID": ev.OrderID, "NotificationID": nid})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `WITH seq AS (UPDATE doctors SET notification_seq = notification_seq + 1 WHERE id = $2 RETURNING notification_seq)
INSERT INTO notifications (id, doctor_id, seq, dedup_key, type, category, priority, title, body, data, checkup_id, result_version,
	order_id, source_event_id, state, send_at, created_at)
VALUES ($1, $2, (SELECT notification_seq FROM seq), $3, 'result_available', 'results', 'normal', $4, $5, $6, $7, $8, $9, $10, 'active', $11, $11)`,
		nid, doctorID, dedup, "New result for "+ev.Patient.DisplayName, "A result of checkup "+ev.CheckupID+" is available.",
		string(data), ev.CheckupID, ev.Result.Version, ev.OrderID, id, now); err != nil {
		return fmt.Errorf("notification: %w", err)
	}
	inApp, email := notify.DeliveryID(nid, domain.ChannelInApp), notify.DeliveryID(nid, domain.ChannelEmail)
	if _, err := tx.Exec(ctx, `INSERT INTO deliveries (id, notification_id, channel, status, send_at, created_at, updated_at)
VALUES ($1, $3, 'in_app', 'queued', $4, $4, $4), ($2, $3, 'email', 'queued', $4, $4, $4)`, inApp, email, nid, now); err != nil {
		return fmt.Errorf("deliveries: %w", err)
	}
	cmd := func(channel string) (string, error) {
		b, err := json.Marshal(command{NotificationID: nid, CheckupID: ev.CheckupID, DoctorID: doctorID, Channel: channel, SendAt: now})
		return string(b), err
	}
	p1, err := cmd("in_app")
	if err != nil {
		return err
	}
	p2, err := cmd("email")
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO same_work_outbox (uuid, payload, metadata, transaction_id)
VALUES ($1, $2, $5, pg_current_xact_id()), ($3, $4, $5, pg_current_xact_id())`, inApp, p1, email, p2, string(metadata)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}
