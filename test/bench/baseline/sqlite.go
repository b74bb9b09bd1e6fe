package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/events"
)

// SQLiteSchema is the baseline of the embedded default: the topic is a
// table (as on the SQL transport), read in offset order by one consumer
// whose progress is committed with each event's transaction.
var SQLiteSchema = []string{
	`CREATE TABLE events ("offset" INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, payload BLOB NOT NULL, metadata TEXT NOT NULL)`,
	`CREATE TABLE consumer_offsets (consumer TEXT PRIMARY KEY, "offset" INTEGER NOT NULL)`,
	`CREATE TABLE inbox (consumer TEXT NOT NULL, message_id TEXT NOT NULL, processed_at TIMESTAMP NOT NULL, PRIMARY KEY (consumer, message_id)) WITHOUT ROWID`,
	`CREATE TABLE checkups (id TEXT PRIMARY KEY, order_id TEXT NOT NULL DEFAULT '', patient_ref TEXT NOT NULL, status TEXT NOT NULL,
	last_event_at TIMESTAMP NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL)`,
	`CREATE TABLE notifications (id TEXT PRIMARY KEY, doctor_id TEXT NOT NULL, dedup_key TEXT NOT NULL UNIQUE, checkup_id TEXT NOT NULL,
	source_event_id TEXT NOT NULL, created_at TIMESTAMP NOT NULL)`,
	`CREATE TABLE outbox ("offset" INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, payload TEXT NOT NULL, metadata TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL)`,
}

// InsertSQLiteEvents appends evs to the baseline's events table in one
// transaction.
func InsertSQLiteEvents(ctx context.Context, db *bun.DB, evs []Event) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, e := range evs {
			md := map[string]string{}
			for _, h := range e.Headers {
				md[h.Key] = string(h.Value)
			}
			raw, err := json.Marshal(md)
			if err != nil {
				return err
			}
			if _, err := tx.NewRaw(`INSERT INTO events (uuid, payload, metadata) VALUES (?, ?, ?)`, e.ID, e.Payload, string(raw)).Exec(ctx); err != nil {
				return fmt.Errorf("insert event: %w", err)
			}
		}
		return nil
	})
}

// SQLitePipeline polls the events table every interval when it has caught
// up and processes each event in one transaction: inbox, checkup,
// notification, outbox and its own offset.
type SQLitePipeline struct {
	db       *bun.DB
	interval time.Duration
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	err      error
}

// StartSQLite starts the pipeline on db (which holds SQLiteSchema).
func StartSQLite(db *bun.DB, interval time.Duration) *SQLitePipeline {
	ctx, cancel := context.WithCancel(context.Background())
	p := &SQLitePipeline{db: db, interval: interval, cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p
}

type sqliteEvent struct {
	Offset   int64  `bun:"offset"`
	UUID     string `bun:"uuid"`
	Payload  []byte `bun:"payload"`
	Metadata string `bun:"metadata"`
}

func (p *SQLitePipeline) run(ctx context.Context) {
	defer close(p.done)
	var offset int64
	for ctx.Err() == nil {
		var batch []sqliteEvent
		if err := p.db.NewRaw(`SELECT "offset", uuid, payload, metadata FROM events WHERE "offset" > ? ORDER BY "offset" LIMIT 100`, offset).Scan(ctx, &batch); err != nil {
			if ctx.Err() == nil {
				p.fail(fmt.Errorf("poll: %w", err))
			}
			return
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(p.interval):
			}
			continue
		}
		for _, e := range batch {
			if err := p.process(ctx, e); err != nil {
				if ctx.Err() == nil {
					p.fail(err)
				}
				return
			}
			offset = e.Offset
		}
	}
}

func (p *SQLitePipeline) process(ctx context.Context, e sqliteEvent) error {
	var ev events.CheckupEvent
	if err := json.Unmarshal(e.Payload, &ev); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if len(ev.ReferringDoctors) == 0 {
		return errors.New("event without doctor")
	}
	now := time.Now().UTC()
	doctor := ev.ReferringDoctors[0].ExternalUserID
	payload, err := json.Marshal(command{NotificationID: e.UUID, CheckupID: ev.CheckupID, DoctorID: doctor, Channel: "in_app", SendAt: now})
	if err != nil {
		return err
	}
	return p.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewRaw(`INSERT INTO inbox (consumer, message_id, processed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, Consumer, e.UUID, now).Exec(ctx)
		if err != nil {
			return fmt.Errorf("inbox: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if _, err := tx.NewRaw(`INSERT INTO checkups (id, order_id, patient_ref, status, last_event_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				ev.CheckupID, ev.OrderID, ev.Patient.Ref, "resulted", ev.OccurredAt, now, now).Exec(ctx); err != nil {
				return fmt.Errorf("checkup: %w", err)
			}
			if _, err := tx.NewRaw(`INSERT INTO notifications (id, doctor_id, dedup_key, checkup_id, source_event_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				e.UUID, doctor, "checkup/"+ev.CheckupID+"/result/1|to:"+doctor, ev.CheckupID, e.UUID, now).Exec(ctx); err != nil {
				return fmt.Errorf("notification: %w", err)
			}
			if _, err := tx.NewRaw(`INSERT INTO outbox (uuid, payload, metadata, created_at) VALUES (?, ?, ?, ?)`, e.UUID, string(payload), e.Metadata, now).Exec(ctx); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
		}
		_, err = tx.NewRaw(`INSERT INTO consumer_offsets (consumer, "offset") VALUES (?, ?) ON CONFLICT (consumer) DO UPDATE SET "offset" = excluded."offset"`, Consumer, e.Offset).Exec(ctx)
		return err
	})
}

func (p *SQLitePipeline) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// Err returns the error that stopped the pipeline, if any.
func (p *SQLitePipeline) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop stops the pipeline after the event in hand.
func (p *SQLitePipeline) Stop() {
	p.cancel()
	<-p.done
}
