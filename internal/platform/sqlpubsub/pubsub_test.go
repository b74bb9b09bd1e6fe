package sqlpubsub_test

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
)

// A message published in a caller's transaction exists if and only if that
// transaction commits, together with the caller's own writes, and is
// delivered once.
func TestTxPublisher(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		logger := newRecordingLogger()
		ps := newPubSub(t, db, logger)
		topic := newTopic("tx")
		require.NoError(t, ps.InitializeTopic(ctx, topic))
		_, err := db.ExecContext(ctx, "CREATE TABLE doctors (id TEXT PRIMARY KEY)")
		require.NoError(t, err)

		sub, err := ps.Subscriber("g")
		require.NoError(t, err)
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)

		publishInTx := func(doctor string, commit bool) *message.Message {
			tx, err := db.BeginTx(ctx, nil)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, "INSERT INTO doctors (id) VALUES (?)", doctor)
			require.NoError(t, err)
			pub, err := ps.TxPublisher(tx.Tx)
			require.NoError(t, err)
			msg := message.NewMessage(watermill.NewUUID(), []byte(doctor))
			require.NoError(t, pub.Publish(topic, msg))
			if commit {
				require.NoError(t, tx.Commit())
			} else {
				require.NoError(t, tx.Rollback())
			}
			return msg
		}

		publishInTx("rolled-back", false)
		// Many poll intervals: a subscriber that could see the rolled-back
		// row would have delivered it by now.
		requireNothing(t, msgs, 300*time.Millisecond)

		committed := publishInTx("committed", true)
		got := receive(t, msgs, 10*time.Second)
		assert.Equal(t, committed.UUID, got.UUID)
		assert.Equal(t, "committed", string(got.Payload))
		got.Ack()
		requireNothing(t, msgs, 300*time.Millisecond)
		require.NoError(t, sub.Close())

		// The group's offset is past it: a new subscriber of the group gets
		// nothing.
		sub, err = ps.Subscriber("g")
		require.NoError(t, err)
		msgs, err = sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		requireNothing(t, msgs, 300*time.Millisecond)
		require.NoError(t, sub.Close())

		assert.Equal(t, 1, countRows(t, db, `SELECT count(*) FROM "watermill_`+topic+`"`))
		assert.Equal(t, 1, countRows(t, db, `SELECT count(*) FROM doctors`))
		assert.Empty(t, logger.Errors())
	})
}

// A tx publisher never creates tables inside the caller's transaction: on an
// uninitialized topic it fails instead.
func TestTxPublisherDoesNotCreateTables(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		ps := newPubSub(t, db, nil)
		topic := newTopic("uninitialized")

		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		pub, err := ps.TxPublisher(tx.Tx)
		require.NoError(t, err)
		err = pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("x")))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "watermill_"+topic)
	})
}

// Payloads are bytes, not JSON, and survive with their metadata; the
// offsets table records the group's position after the ack.
func TestPayloadAndMetadataRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		ps := newPubSub(t, db, nil)
		pub, sub := pubSubPair(t, ps, "g")
		defer func() { _ = pub.Close(); _ = sub.Close() }()
		topic := newTopic("bytes")

		// Not valid UTF-8, let alone JSON: what a poison message looks like.
		payload := []byte{0xff, 0x00, 0xfe, '{'}
		sent := message.NewMessage(watermill.NewUUID(), payload)
		sent.Metadata.Set("correlation_id", "abc")
		sent.Metadata.Set("quote", `"'; DROP TABLE x; --`)
		require.NoError(t, pub.Publish(topic, sent))

		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		got := receive(t, msgs, 10*time.Second)
		assert.Equal(t, sent.UUID, got.UUID)
		assert.Equal(t, payload, []byte(got.Payload))
		assert.Equal(t, sent.Metadata, got.Metadata)
		got.Ack()

		require.Eventually(t, func() bool {
			return countRows(t, db, `SELECT count(*) FROM "watermill_offsets_`+topic+`" WHERE consumer_group = 'g' AND offset_acked > 0`) == 1
		}, 10*time.Second, 10*time.Millisecond)
	})
}

func TestInitializeTopicRejectsUnsafeNames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ps := newPubSub(t, b.open(t), nil)
		for _, topic := range []string{"", `a"b`, "a b", "a;DROP TABLE x"} {
			err := ps.InitializeTopic(context.Background(), topic)
			assert.ErrorIs(t, err, sql.ErrInvalidTopicName, "topic %q", topic)
		}
		assert.NoError(t, ps.InitializeTopic(context.Background(), "ok-topic_1.$:x"))
		// Idempotent.
		assert.NoError(t, ps.InitializeTopic(context.Background(), "ok-topic_1.$:x"))
	})
}

// Two subscribers of one consumer group, built from two PubSub values on the
// same database, consume while messages keep arriving and while every handler
// writes in its own transaction (a row plus an outbox message) before acking.
//
// On SQLite this is the scenario in which watermill-sql's own transaction
// handling fails: the subscriber's transaction, open from SELECT to ack,
// cannot write its ack after the handler's transaction committed
// (SQLITE_BUSY_SNAPSHOT), or, begun IMMEDIATE, blocks the handler's write
// until busy_timeout (a deadlock). The test requires that every message is
// handled exactly once, with no handler error and no error logged by the
// transport, well before busy_timeout could have masked a deadlock.
func TestConsumerGroupWithWritingHandlers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		db := b.open(t)
		logger := newRecordingLogger()
		topic, outboxTopic := newTopic("work"), newTopic("outbox")

		psA, psB := newPubSub(t, db, logger), newPubSub(t, db, logger)
		require.NoError(t, psA.InitializeTopic(ctx, topic))
		require.NoError(t, psA.InitializeTopic(ctx, outboxTopic))
		_, err := db.ExecContext(ctx, "CREATE TABLE processed (msg_uuid TEXT PRIMARY KEY, worker TEXT NOT NULL)")
		require.NoError(t, err)

		const total = 300
		var (
			deliveries  atomic.Int64
			handlerErrs = make(chan error, total)
			perWorker   sync.Map
		)
		handle := func(worker string, ps *sqlpubsub.PubSub, msg *message.Message) error {
			// Hold the message a little so the other subscriber's attempts
			// to read the group overlap with this one.
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO processed (msg_uuid, worker) VALUES (?, ?)", msg.UUID, worker); err != nil {
					return fmt.Errorf("record %s (delivered twice?): %w", msg.UUID, err)
				}
				pub, err := ps.TxPublisher(tx.Tx)
				if err != nil {
					return err
				}
				return pub.Publish(outboxTopic, message.NewMessage(watermill.NewUUID(), msg.Payload))
			})
		}

		var wg sync.WaitGroup
		for _, w := range []struct {
			name string
			ps   *sqlpubsub.PubSub
		}{{"a", psA}, {"b", psB}} {
			sub, err := w.ps.Subscriber("workers")
			require.NoError(t, err)
			defer func() { require.NoError(t, sub.Close()) }()
			msgs, err := sub.Subscribe(ctx, topic)
			require.NoError(t, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for msg := range msgs {
					deliveries.Add(1)
					if err := handle(w.name, w.ps, msg); err != nil {
						handlerErrs <- err
						msg.Nack()
						continue
					}
					n, _ := perWorker.LoadOrStore(w.name, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
					msg.Ack()
				}
			}()
		}

		// Publish while the group consumes, in small autocommit batches.
		pub, err := psA.Publisher()
		require.NoError(t, err)
		for i := 0; i < total; i += 3 {
			batch := make([]*message.Message, 0, 3)
			for j := i; j < i+3 && j < total; j++ {
				batch = append(batch, message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%d", j)))
			}
			require.NoError(t, pub.Publish(topic, batch...))
		}
		require.NoError(t, pub.Close())

		processed := func() int { return countRows(t, db, "SELECT count(*) FROM processed") }
		for processed() < total {
			select {
			case err := <-handlerErrs:
				t.Fatalf("handler failed: %v", err)
			case <-ctx.Done():
				t.Fatalf("only %d of %d messages processed before the deadline (deadlock?)", processed(), total)
			case <-time.After(20 * time.Millisecond):
			}
		}
		// Anything delivered twice would show up now.
		time.Sleep(300 * time.Millisecond)
		select {
		case err := <-handlerErrs:
			t.Fatalf("handler failed: %v", err)
		default:
		}
		assert.Equal(t, int64(total), deliveries.Load(), "deliveries")
		assert.Equal(t, total, processed())
		assert.Equal(t, total, countRows(t, db, `SELECT count(*) FROM "watermill_`+outboxTopic+`"`))
		assert.Empty(t, logger.Errors(), "errors logged by the transport")
		perWorker.Range(func(k, v any) bool {
			t.Logf("worker %s handled %d", k, v.(*atomic.Int64).Load())
			return true
		})
	})
}

// A subscriber queued behind another subscriber of its group (whose handler
// here never acks) is excluded from the group's messages, and its Close does
// not wait for that handler: waiting on a PostgreSQL row lock could not be
// abandoned, and would last until the holder's ack deadline (30s).
func TestCloseWhileGroupIsHeld(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		logger := newRecordingLogger()
		ps := newPubSub(t, b.open(t), logger)
		topic := newTopic("held")
		pub, holder := pubSubPair(t, ps, "g")
		require.NoError(t, pub.Publish(topic,
			message.NewMessage(watermill.NewUUID(), []byte("1")),
			message.NewMessage(watermill.NewUUID(), []byte("2")),
		))
		held, err := holder.Subscribe(ctx, topic)
		require.NoError(t, err)
		first := receive(t, held, 10*time.Second)

		waiter, err := ps.Subscriber("g")
		require.NoError(t, err)
		waiting, err := waiter.Subscribe(ctx, topic)
		require.NoError(t, err)
		requireNothing(t, waiting, 300*time.Millisecond)

		start := time.Now()
		require.NoError(t, waiter.Close())
		assert.Less(t, time.Since(start), 2*time.Second, "Close waited for the other subscriber's handler")

		first.Ack()
		second := receive(t, held, 10*time.Second)
		assert.Equal(t, "2", string(second.Payload))
		second.Ack()
		require.NoError(t, holder.Close())
		require.NoError(t, pub.Close())
		assert.Empty(t, logger.Errors())
	})
}

// The SQLite beginner's lock: one holder per (database, topic, group),
// abandoned on stop or context end, released by Commit or Rollback.
func TestSQLiteSubscriberBeginnerLock(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t).DB
	otherDB := openSQLite(t).DB

	held, err := sqlpubsub.NewSQLiteSubscriberBeginner(db, "t", "g", nil).BeginTx(ctx, nil)
	require.NoError(t, err)

	waitFor := func(b *sqlpubsub.SQLiteSubscriberBeginner) error {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		tx, err := b.BeginTx(ctx, nil)
		if err == nil {
			require.NoError(t, tx.Commit())
		}
		return err
	}
	assert.ErrorIs(t, waitFor(sqlpubsub.NewSQLiteSubscriberBeginner(db, "t", "g", nil)), context.DeadlineExceeded, "same topic and group")
	assert.NoError(t, waitFor(sqlpubsub.NewSQLiteSubscriberBeginner(db, "t", "other", nil)), "other group")
	assert.NoError(t, waitFor(sqlpubsub.NewSQLiteSubscriberBeginner(db, "other", "g", nil)), "other topic")
	assert.NoError(t, waitFor(sqlpubsub.NewSQLiteSubscriberBeginner(otherDB, "t", "g", nil)), "other database")

	stop := make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		_, err := sqlpubsub.NewSQLiteSubscriberBeginner(db, "t", "g", stop).BeginTx(ctx, nil)
		stopped <- err
	}()
	close(stop)
	select {
	case err := <-stopped:
		assert.ErrorIs(t, err, sqlpubsub.ErrSubscriberStopping)
	case <-time.After(5 * time.Second):
		t.Fatal("BeginTx kept waiting after stop")
	}

	// Statements run in autocommit: visible before Commit.
	_, err = held.ExecContext(ctx, "CREATE TABLE x (id INTEGER)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO x VALUES (1)")
	require.NoError(t, err)

	require.NoError(t, held.Rollback())
	assert.ErrorIs(t, held.Commit(), stdsql.ErrTxDone)
	_, err = held.ExecContext(ctx, "SELECT 1")
	assert.ErrorIs(t, err, stdsql.ErrTxDone)
	assert.NoError(t, waitFor(sqlpubsub.NewSQLiteSubscriberBeginner(db, "t", "g", nil)), "released")
}

// Message ids are CloudEvents ids chosen by other systems; they need not be
// 36-character UUIDs.
func TestLongMessageIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		db := b.open(t)
		ps := newPubSub(t, db, nil)
		pub, sub := pubSubPair(t, ps, "g")
		defer func() { _ = pub.Close(); _ = sub.Close() }()
		topic := newTopic("longid")

		id := "urn:checkup-platform:events:2026-11-25:" + watermill.NewUUID() + ":result-final-v3"
		require.NoError(t, pub.Publish(topic, message.NewMessage(id, []byte(`{}`))))
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		got := receive(t, msgs, 10*time.Second)
		assert.Equal(t, id, got.UUID)
		got.Ack()
	})
}
