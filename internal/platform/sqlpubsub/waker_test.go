package sqlpubsub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/platform/sqlpubsub"
)

// slowPoll is far longer than any wait below: a message these tests receive
// in time reached its subscriber through the wake, not the poll.
var slowPoll = sqlpubsub.Options{PollInterval: 10 * time.Second, ResendInterval: 10 * time.Millisecond}

// wakeTimeout bounds how long a woken subscriber may take; generous for a
// busy machine, and still a tenth of the poll interval.
const wakeTimeout = time.Second

// idle leaves a new subscription time to find its topic empty and start
// waiting, so that what follows must wake it.
func idle() { time.Sleep(200 * time.Millisecond) }

// On SQLite, a message committed in this process reaches a waiting
// subscriber at once, whether published by Publisher (autocommit, here from
// another PubSub on the same database) or by a TxPublisher inside a bun
// transaction; a transaction that rolls back wakes nobody with a message.
func TestSQLiteCommitWakesSubscribers(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	logger := newRecordingLogger()
	ps, err := sqlpubsub.New(db, logger, slowPoll)
	require.NoError(t, err)
	publishing, err := sqlpubsub.New(db, logger, slowPoll)
	require.NoError(t, err)
	topic := newTopic("wake")
	require.NoError(t, ps.InitializeTopic(ctx, topic))

	sub, err := ps.Subscriber("g")
	require.NoError(t, err)
	defer func() { require.NoError(t, sub.Close()) }()
	msgs, err := sub.Subscribe(ctx, topic)
	require.NoError(t, err)

	pub, err := publishing.Publisher()
	require.NoError(t, err)
	publishInTx := func(payload string, commit bool) {
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			txPub, err := ps.TxPublisher(tx.Tx)
			if err != nil {
				return err
			}
			if err := txPub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(payload))); err != nil {
				return err
			}
			if !commit {
				return errRollback
			}
			return nil
		})
		if commit {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, errRollback)
		}
	}

	// Several rounds, each starting from a waiting subscriber.
	for i := range 5 {
		idle()
		start := time.Now()
		require.NoError(t, pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("autocommit"))))
		got := receive(t, msgs, wakeTimeout)
		t.Logf("round %d: Publisher → subscriber %s", i, time.Since(start))
		assert.Equal(t, "autocommit", string(got.Payload))
		got.Ack()

		idle()
		publishInTx("rolled back", false)
		start = time.Now()
		publishInTx("in tx", true)
		got = receive(t, msgs, wakeTimeout)
		t.Logf("round %d: bun tx → subscriber %s", i, time.Since(start))
		assert.Equal(t, "in tx", string(got.Payload))
		got.Ack()
	}
	assert.Empty(t, logger.Errors())
}

var errRollback = errors.New("roll back")

// A subscription waiting for a wake ends promptly when its subscriber is
// closed or its context is canceled, not after the poll interval.
func TestSQLiteWaitingSubscriptionEnds(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	logger := newRecordingLogger()
	ps, err := sqlpubsub.New(db, logger, slowPoll)
	require.NoError(t, err)
	topic := newTopic("wait")

	sub, err := ps.Subscriber("g")
	require.NoError(t, err)
	msgs, err := sub.Subscribe(ctx, topic)
	require.NoError(t, err)
	idle()
	start := time.Now()
	require.NoError(t, sub.Close())
	assert.Less(t, time.Since(start), wakeTimeout, "Close waited for the poll interval")
	_, open := <-msgs
	assert.False(t, open, "messages channel open after Close")

	sub, err = ps.Subscriber("g")
	require.NoError(t, err)
	defer func() { require.NoError(t, sub.Close()) }()
	subCtx, cancel := context.WithCancel(ctx)
	msgs, err = sub.Subscribe(subCtx, topic)
	require.NoError(t, err)
	idle()
	start = time.Now()
	cancel()
	select {
	case _, open := <-msgs:
		assert.False(t, open, "message after cancel")
		assert.Less(t, time.Since(start), wakeTimeout)
	case <-time.After(5 * time.Second):
		t.Fatal("subscription kept waiting after its context was canceled")
	}
	assert.Empty(t, logger.Errors())
}
