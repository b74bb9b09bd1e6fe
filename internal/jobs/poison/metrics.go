package poison

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
)

// Collector exports the poison table's depth at scrape time:
// rfd_poison_pending{topic,reason} (reason is the poison class, a bounded
// set, never the free-text reason) and rfd_poison_oldest_pending_age_seconds.
// Reading the table on each scrape keeps every replica's answer the same
// and right after a CLI replay or discard.
type Collector struct {
	db      *bun.DB
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
		db: db, now: now,
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
	var rows []struct {
		Topic string `bun:"topic"`
		Class string `bun:"class"`
		N     int    `bun:"n"`
	}
	if err := c.db.NewRaw(`SELECT topic, class, COUNT(*) AS n FROM poison_messages WHERE state = ? GROUP BY topic, class`, StatePending).Scan(ctx, &rows); err != nil {
		failed = 1
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(r.N), r.Topic, r.Class)
	}
	age := 0.0
	var oldest []Message
	if err := c.db.NewSelect().Model(&oldest).Column("id", "first_seen_at").Where("state = ?", StatePending).
		Order("first_seen_at").Limit(1).Scan(ctx); err != nil {
		failed = 1
	}
	if len(oldest) == 1 {
		age = max(0, c.now().Sub(oldest[0].FirstSeenAt).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.GaugeValue, failed)
}
