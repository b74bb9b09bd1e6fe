// Package baseline is the hand-written pipeline the service's checkup-events
// consumer is measured against, and the events both are fed: a franz-go
// consumer group + pgx, one transaction per event doing what the service's
// consumer does at its core (inbox, checkup, notification, outbox inserts),
// with none of the service's layers. BenchmarkCheckupEvents and the
// performance harness (test/bench/harness) use it. StartSameWork runs the
// same-work variant BenchmarkCheckupEvents prints beside it.
package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rfd-notify/rfd/internal/core/events"
)

// Event is one checkup event as its producer sends it.
type Event struct {
	ID      string // ce_id, the message id the inbox records
	Key     string // the checkup id: the partition key
	Payload []byte
	Headers []kgo.RecordHeader
}

// Record returns the Kafka record of e on topic.
func (e Event) Record(topic string) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(e.Key), Value: e.Payload, Headers: e.Headers}
}

// DoctorExternalID is the external user id of doctor i of the events.
func DoctorExternalID(i int) string { return fmt.Sprintf("bench-doc-%05d", i) }

// MakeEvents builds n result_available events (status final), each with a
// distinct checkup id and one referring doctor out of doctors, encoded and
// validated by the contract's own encoder. tag keeps the ids of different
// batches apart.
func MakeEvents(tag string, n, doctors int) ([]Event, error) {
	occurred := time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC)
	evs := make([]Event, n)
	for i := range evs {
		checkup := fmt.Sprintf("CHK-%s-%07d", tag, i)
		id := fmt.Sprintf("ce-%s-%07d", tag, i)
		ev := events.CheckupEvent{
			EventType: events.CheckupResultAvailable,
			CheckupID: checkup,
			OrderID:   "ORD-" + checkup,
			Patient:   events.Patient{Ref: fmt.Sprintf("PT-%07d", i), DisplayName: "Somchai Jaidee", BirthYear: 1970},
			ReferringDoctors: []events.ReferringDoctor{
				{ExternalUserID: DoctorExternalID(i % doctors), Role: events.RolePrimary},
			},
			OccurredAt: occurred,
			Result: &events.Result{
				Version: 1,
				Status:  events.ResultFinal,
				Tests:   []events.Test{{Code: "K", Name: "Potassium", Value: "6.9", Unit: "mmol/L", Flag: events.FlagCriticalHigh}},
			},
		}
		payload, err := ev.Encode()
		if err != nil {
			return nil, fmt.Errorf("encode event %d: %w", i, err)
		}
		md := events.CloudEventMetadata(id, events.TypeCheckupEvent, "bench-producer", occurred)
		keys := make([]string, 0, len(md))
		for k := range md {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		hs := make([]kgo.RecordHeader, 0, len(keys))
		for _, k := range keys {
			hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(md[k])})
		}
		evs[i] = Event{ID: id, Key: checkup, Payload: payload, Headers: hs}
	}
	return evs, nil
}

// Produce writes evs to topic with a batching franz-go producer and returns
// how many partitions they landed on.
func Produce(ctx context.Context, brokers []string, topic string, evs []Event) (partitions int, err error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(20000),
	)
	if err != nil {
		return 0, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	var (
		mu       sync.Mutex
		firstErr error
		parts    = map[int32]bool{}
		wg       sync.WaitGroup
	)
	for _, e := range evs {
		wg.Add(1)
		cl.Produce(ctx, e.Record(topic), func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			parts[r.Partition] = true
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("producer flush: %w", err)
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("produce to %s: %w", topic, firstErr)
	}
	return len(parts), nil
}

// Schema is the baseline's database: the service's tables cut to what the
// baseline writes.
const Schema = `
CREATE TABLE inbox (
	consumer     TEXT NOT NULL,
	message_id   TEXT NOT NULL,
	processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer, message_id)
);
CREATE TABLE checkups (
	id            TEXT PRIMARY KEY,
	order_id      TEXT NOT NULL DEFAULT '',
	patient_ref   TEXT NOT NULL,
	status        TEXT NOT NULL,
	last_event_at TIMESTAMPTZ NOT NULL,
	created_at    TIMESTAMPTZ NOT NULL,
	updated_at    TIMESTAMPTZ NOT NULL
);
CREATE TABLE notifications (
	id              TEXT PRIMARY KEY,
	doctor_id       TEXT NOT NULL,
	dedup_key       TEXT NOT NULL UNIQUE,
	checkup_id      TEXT NOT NULL,
	source_event_id TEXT NOT NULL,
	created_at      TIMESTAMPTZ NOT NULL
);
CREATE TABLE outbox ` + outboxColumns + `;`

// outboxColumns shape a pipeline's outbox like watermill-sql's PostgreSQL
// topic table (the service's outbox).
const outboxColumns = `(
	"offset"       BIGSERIAL,
	"uuid"         VARCHAR(36) NOT NULL,
	"created_at"   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	"payload"      JSON DEFAULT NULL,
	"metadata"     JSON DEFAULT NULL,
	"transaction_id" xid8 NOT NULL,
	PRIMARY KEY ("transaction_id", "offset")
)`

// Consumer is the consumer name the baseline's inbox rows carry.
const Consumer = "checkup-events"

// Pipeline is a franz-go group consumer processing each partition in its
// own goroutine, in order, one transaction per record; a record's offset
// is marked once its transaction commits and marks are committed every
// second.
type Pipeline struct {
	cl      *kgo.Client
	pool    *pgxpool.Pool
	process func(*Pipeline, context.Context, *kgo.Record) error
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	workers sync.WaitGroup
	failed  atomic.Pointer[error]
}

// Start starts the pipeline on topic in consumer group group.
func Start(brokers []string, topic, group string, pool *pgxpool.Pool) (*Pipeline, error) {
	return start(brokers, topic, group, pool, (*Pipeline).processCore)
}

func start(brokers []string, topic, group string, pool *pgxpool.Pool, process func(*Pipeline, context.Context, *kgo.Record) error) (*Pipeline, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			_ = cl.CommitMarkedOffsets(ctx)
		}),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Pipeline{cl: cl, pool: pool, process: process, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go c.poll()
	return c, nil
}

func (c *Pipeline) poll() {
	defer close(c.done)
	parts := map[int32]chan []*kgo.Record{}
	defer func() {
		for _, ch := range parts {
			close(ch)
		}
		c.workers.Wait()
	}()
	for {
		fetches := c.cl.PollFetches(c.ctx)
		if fetches.IsClientClosed() || c.ctx.Err() != nil {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.fail(fmt.Errorf("fetch %s/%d: %w", t, p, err))
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			ch, ok := parts[p.Partition]
			if !ok {
				ch = make(chan []*kgo.Record, 4)
				parts[p.Partition] = ch
				c.workers.Add(1)
				go c.work(ch)
			}
			select {
			case ch <- p.Records:
			case <-c.ctx.Done():
			}
		})
	}
}

func (c *Pipeline) work(ch chan []*kgo.Record) {
	defer c.workers.Done()
	for recs := range ch {
		for _, r := range recs {
			for attempt := 1; ; attempt++ {
				err := c.process(c, c.ctx, r)
				if err == nil {
					break
				}
				if c.ctx.Err() != nil {
					return
				}
				if attempt == 5 {
					c.fail(err)
					return
				}
				time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
			}
			c.cl.MarkCommitRecords(r)
		}
	}
}

// command is the outbox message the baseline writes per event.
type command struct {
	NotificationID string    `json:"notification_id"`
	CheckupID      string    `json:"checkup_id"`
	DoctorID       string    `json:"doctor_id"`
	Channel        string    `json:"channel"`
	SendAt         time.Time `json:"send_at"`
}

// decode reads a record's id, its metadata as the outbox's JSON, and its
// event.
func decode(r *kgo.Record) (id string, metadata []byte, ev events.CheckupEvent, err error) {
	md := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		md[h.Key] = string(h.Value)
		if h.Key == events.HeaderID {
			id = string(h.Value)
		}
	}
	if err := json.Unmarshal(r.Value, &ev); err != nil {
		return "", nil, ev, fmt.Errorf("decode: %w", err)
	}
	if id == "" || len(ev.ReferringDoctors) == 0 || ev.Result == nil {
		return "", nil, ev, errors.New("event without id, doctor or result")
	}
	if metadata, err = json.Marshal(md); err != nil {
		return "", nil, ev, err
	}
	return id, metadata, ev, nil
}

// processCore is the baseline the issues define: inbox, checkup,
// notification and outbox inserts.
func (c *Pipeline) processCore(ctx context.Context, r *kgo.Record) error {
	id, metadata, ev, err := decode(r)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	doctor := ev.ReferringDoctors[0].ExternalUserID
	payload, err := json.Marshal(command{
		NotificationID: id, CheckupID: ev.CheckupID, DoctorID: doctor, Channel: "in_app", SendAt: now,
	})
	if err != nil {
		return err
	}
	return c.inTx(ctx, id, now, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO checkups (id, order_id, patient_ref, status, last_event_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`,
			ev.CheckupID, ev.OrderID, ev.Patient.Ref, "resulted", ev.OccurredAt, now); err != nil {
			return fmt.Errorf("checkup: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notifications (id, doctor_id, dedup_key, checkup_id, source_event_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			id, doctor, "checkup/"+ev.CheckupID+"/result/1|to:"+doctor, ev.CheckupID, id, now); err != nil {
			return fmt.Errorf("notification: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (uuid, payload, metadata, transaction_id) VALUES ($1, $2, $3, pg_current_xact_id())`,
			id, string(payload), string(metadata)); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		return nil
	})
}

// inTx runs work in the transaction of event id, after its inbox row, and
// commits; a redelivery (the row is there) does nothing.
func (c *Pipeline) inTx(ctx context.Context, id string, now time.Time, work func(pgx.Tx) error) error {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, message_id, processed_at) VALUES ($1, $2, $3) ON CONFLICT (consumer, message_id) DO NOTHING`,
		Consumer, id, now)
	if err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil // a redelivery
	}
	if err := work(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// NewPool opens the pgx pool a hand-written pipeline uses on url: the
// service's pool size, and each statement prepared once per connection
// whatever the URL says (RFD_TEST_DATABASE_URL may carry pgx options meant
// for the service). customPlans plans them for their arguments, as the
// service's pool does (store.openPostgres).
func NewPool(ctx context.Context, url string, customPlans bool) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 20 // the service's pool size (store.Open)
	pcfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	if customPlans {
		pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	return pool, nil
}

// Processed counts the events the pipeline has committed (its inbox rows).
func Processed(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM inbox WHERE consumer = $1`, Consumer).Scan(&n)
	return n, err
}

func (c *Pipeline) fail(err error) { c.failed.CompareAndSwap(nil, &err) }

// Err returns the first error that stopped a partition's worker.
func (c *Pipeline) Err() error {
	if p := c.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Stop stops polling, lets the workers finish the record in hand, commits
// the marked offsets and closes the client.
func (c *Pipeline) Stop() {
	c.cancel()
	<-c.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.cl.CommitMarkedOffsets(ctx)
	c.cl.Close()
}
