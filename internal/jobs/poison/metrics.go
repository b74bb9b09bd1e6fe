package poison

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/store"
)

// Collector exports the poison table's depth at scrape time:
// rfd_poison_pending{topic,reason} (reason is the poison class, a bounded
// set, never the free-text reason) and rfd_poison_oldest_pending_age_seconds.
// Reading the table on each scrape keeps every replica's answer the same
// and right after a CLI replay or discard.
type Collector struct {
	q       store.PoisonMessageExecutor
	now     func() time.Time
	pending *prometheus.Desc
	oldest  *prometheus.Desc
	errors  *prometheus.Desc
}

// NewCollector returns the collector; register it once per process.
func NewCollector(db *bun.DB, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{
		q: store.NewQueries(db), now: now,
		pending: prometheus.NewDesc("rfd_poison_pending", "Poisoned messages waiting for an operator, by original topic and poison class.",
			[]string{"topic", "reason"}, nil),
		oldest: prometheus.NewDesc("rfd_poison_oldest_pending_age_seconds", "Age of the oldest poisoned message waiting for an operator (0 when none).", nil, nil),
		errors: prometheus.NewDesc("rfd_poison_scrape_error", "1 when the poison table could not be read for this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
	ch <- c.errors
}

// scrapeTimeout bounds the queries of one scrape.
const scrapeTimeout = 3 * time.Second

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	failed := 0.0
	rows, err := c.q.PoisonMessageCountByTopicClass(ctx, StatePending)
	if err != nil {
		failed = 1
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(r.N), r.Topic, r.Class)
	}
	age := 0.0
	oldest, ok, err := c.q.PoisonMessageGetOldestSeen(ctx, StatePending)
	if err != nil {
		failed = 1
	}
	if ok {
		age = max(0, c.now().Sub(oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.GaugeValue, failed)
}
