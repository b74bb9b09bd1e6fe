// Package config holds every setting of the rfd binary. Each one is an RFD_*
// environment variable with a matching command-line flag; a flag wins over
// the variable, and the variable over the default.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/mail"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	robfig "github.com/robfig/cron/v3"
	"github.com/spf13/pflag"
)

// Consumer names: the five inbound consumers of DESIGN.md. They are also the
// router handler names and, with the group prefix, the consumer group names.
const (
	ConsumerCheckupEvents      = "checkup-events"
	ConsumerOrderHistoryEvents = "order-history-events"
	ConsumerSendNotification   = "send-notification"
	ConsumerUserCreated        = "user-created"
	ConsumerInternalLogin      = "internal-login"
)

// Consumers lists the consumer names in the order `rfd consume --help` shows them.
var Consumers = []string{
	ConsumerCheckupEvents,
	ConsumerOrderHistoryEvents,
	ConsumerSendNotification,
	ConsumerUserCreated,
	ConsumerInternalLogin,
}

// OrderStatuses are the statuses of an order's lifecycle.
var OrderStatuses = []string{"placed", "scheduled", "sample_collected", "in_progress", "completed", "cancelled"}

// Transport names.
const (
	TransportSQL   = "sql"
	TransportKafka = "kafka"
)

// Config is the whole configuration. The `desc` tag is the flag's help text
// and the README's description; the flag name is the variable name without
// RFD_, lower-cased, with dashes.
type Config struct {
	DatabaseURL string `env:"RFD_DATABASE_URL" envDefault:"sqlite://./rfd.db" desc:"database: sqlite://PATH (embedded) or postgres://user:pass@host:port/db" roles:"all"`
	AutoMigrate bool   `env:"RFD_AUTO_MIGRATE" envDefault:"true" desc:"apply pending migrations when serve starts" roles:"serve"`

	Transport    string   `env:"RFD_TRANSPORT" envDefault:"sql" desc:"message transport: sql (topics are tables in the database) or kafka" roles:"all"`
	KafkaBrokers []string `env:"RFD_KAFKA_BROKERS" envDefault:"localhost:9092" envSeparator:"," desc:"comma-separated Kafka bootstrap brokers (transport kafka)" roles:"all"`
	// A killed consumer holds its partitions until the coordinator gives up
	// on it: the session timeout bounds that stall.
	KafkaSessionTimeout    time.Duration `env:"RFD_KAFKA_SESSION_TIMEOUT" envDefault:"10s" desc:"how long the Kafka group coordinator waits for a silent consumer before reassigning its partitions" roles:"all"`
	KafkaHeartbeatInterval time.Duration `env:"RFD_KAFKA_HEARTBEAT_INTERVAL" envDefault:"1s" desc:"Kafka consumer group heartbeat interval; below RFD_KAFKA_SESSION_TIMEOUT" roles:"all"`
	// A restarted container keeps its pod name: with it as the instance id
	// the restart costs no rebalance (see kafkapubsub.Config.InstanceID).
	KafkaInstanceID string `env:"RFD_KAFKA_INSTANCE_ID" desc:"Kafka static group membership id, unique per process (e.g. the pod name): a process restarted with it takes its partitions back without a rebalance; one that stops for good holds them for RFD_KAFKA_SESSION_TIMEOUT; empty: dynamic membership" roles:"all"`

	HTTPAddr  string `env:"RFD_HTTP_ADDR" envDefault:":8080" desc:"listen address of the REST API (api, serve)" roles:"api,send-notification"`
	AdminAddr string `env:"RFD_ADMIN_ADDR" envDefault:":9090" desc:"listen address of /healthz, /readyz and /metrics of every role but serve (the api role serves /metrics only here, never on RFD_HTTP_ADDR)" roles:"all"`

	ConsumerGroupPrefix string `env:"RFD_CONSUMER_GROUP_PREFIX" envDefault:"rfd" desc:"prefix of consumer group names; a group is PREFIX.CONSUMER" roles:"all"`

	TopicCheckupEvents      string `env:"RFD_TOPIC_CHECKUP_EVENTS" envDefault:"checkup-events" desc:"topic of checkup events" roles:"all"`
	TopicOrderHistoryEvents string `env:"RFD_TOPIC_ORDER_HISTORY_EVENTS" envDefault:"order-history-events" desc:"topic of order history events" roles:"all"`
	TopicUserCreated        string `env:"RFD_TOPIC_USER_CREATED" envDefault:"user-created" desc:"topic of user-management user created events" roles:"all"`
	TopicInternalLogin      string `env:"RFD_TOPIC_INTERNAL_LOGIN" envDefault:"internal-login" desc:"topic of user-management internal login events" roles:"all"`
	TopicSendNotification   string `env:"RFD_TOPIC_SEND_NOTIFICATION" envDefault:"send-notification" desc:"topic of send-notification commands" roles:"all"`
	TopicPoison             string `env:"RFD_TOPIC_POISON" envDefault:"rfd-poison" desc:"poison topic: messages that failed permanently or exhausted their retries" roles:"all"`
	TopicOutbox             string `env:"RFD_TOPIC_OUTBOX" envDefault:"rfd-outbox" desc:"SQL topic the outbox writes to and the forwarder relays to Kafka (transport kafka)" roles:"all"`

	LogLevel  string `env:"RFD_LOG_LEVEL" envDefault:"info" desc:"log level: debug, info, warn or error" roles:"all"`
	LogFormat string `env:"RFD_LOG_FORMAT" envDefault:"json" desc:"log format: json or text" roles:"all"`

	RetryMaxAttempts     int           `env:"RFD_RETRY_MAX_ATTEMPTS" envDefault:"5" desc:"attempts of a handler on a transient error before the message goes to the poison topic (1 = no retry)" roles:"routed"`
	RetryInitialInterval time.Duration `env:"RFD_RETRY_INITIAL_INTERVAL" envDefault:"200ms" desc:"first retry backoff; doubles each attempt, with 20% jitter" roles:"routed"`
	RetryMaxInterval     time.Duration `env:"RFD_RETRY_MAX_INTERVAL" envDefault:"10s" desc:"longest retry backoff" roles:"routed"`

	Throttle        map[string]int `env:"RFD_THROTTLE" envSeparator:"," envKeyValSeparator:"=" desc:"per-consumer message rate limit per second, e.g. checkup-events=500,user-created=50 (unset = unlimited)" roles:"routed"`
	HandlerTimeout  time.Duration  `env:"RFD_HANDLER_TIMEOUT" envDefault:"30s" desc:"deadline of one handler attempt" roles:"routed"`
	ShutdownTimeout time.Duration  `env:"RFD_SHUTDOWN_TIMEOUT" envDefault:"30s" desc:"on SIGTERM, how long in-flight work may take before the process exits" roles:"all"`

	CheckupEventsBatch int `env:"RFD_CHECKUP_EVENTS_BATCH" envDefault:"32" desc:"most checkup events one transaction of the checkup-events consumer takes: the events in hand at once (one per Kafka partition) share it; 1 = one transaction per event" roles:"checkup-events"`
	DeliveriesBatch    int `env:"RFD_DELIVERIES_BATCH" envDefault:"32" desc:"most send-notification commands one transaction of the send-notification consumer takes, for its claims and for its records of the attempts: the commands in hand at once (one per Kafka partition) share them; 1 = two transactions per delivery" roles:"send-notification"`

	SQLPollInterval time.Duration `env:"RFD_SQL_POLL_INTERVAL" envDefault:"100ms" desc:"how often an idle SQL-transport subscriber polls its topic table; on SQLite a commit in the same process wakes it at once" roles:"all"`

	PortalURL            string        `env:"RFD_PORTAL_URL" envDefault:"http://localhost:8080" desc:"base URL of the doctor portal, for links in notifications" roles:"all"`
	OrderNotifyStatuses  []string      `env:"RFD_ORDER_NOTIFY_STATUSES" envDefault:"completed,cancelled" envSeparator:"," desc:"order statuses that notify the referring doctors" roles:"order-history-events"`
	FailedLoginThreshold int           `env:"RFD_FAILED_LOGIN_THRESHOLD" envDefault:"5" desc:"failed logins within RFD_FAILED_LOGIN_WINDOW that raise a security alert" roles:"internal-login"`
	FailedLoginWindow    time.Duration `env:"RFD_FAILED_LOGIN_WINDOW" envDefault:"15m" desc:"window in which failed logins are counted" roles:"internal-login"`
	NewDeviceWindow      time.Duration `env:"RFD_NEW_DEVICE_WINDOW" envDefault:"2160h" desc:"a successful login from an IP not seen for the doctor within this window (90 days) notifies the doctor" roles:"internal-login"`
	PendingReportAfter   time.Duration `env:"RFD_PENDING_REPORT_AFTER" envDefault:"24h" desc:"notifications waiting this long for an unknown doctor's user-created event are reported to operators" roles:"worker"`

	TopicReportMail string `env:"RFD_TOPIC_REPORT_MAIL" envDefault:"rfd-report-mail" desc:"topic of report-mail commands: the cron's reports the worker e-mails" roles:"all"`
	TopicInApp      string `env:"RFD_TOPIC_INAPP" envDefault:"rfd-inapp" desc:"broadcast topic of in-app notifications; every API replica reads it to push to its connected portals" roles:"all"`
	InstanceID      string `env:"RFD_INSTANCE_ID" desc:"this replica's name, for its own in-app broadcast consumer group (unset = the host name)" roles:"api,cron"`

	DeliveryMaxAttempts    int           `env:"RFD_DELIVERY_MAX_ATTEMPTS" envDefault:"6" desc:"attempts of one delivery on transient provider failures before it is undelivered" roles:"send-notification"`
	DeliveryInitialBackoff time.Duration `env:"RFD_DELIVERY_INITIAL_BACKOFF" envDefault:"5s" desc:"first delay before a delivery's retry; doubles each attempt, with jitter; a provider's Retry-After wins when longer" roles:"send-notification"`
	DeliveryMaxBackoff     time.Duration `env:"RFD_DELIVERY_MAX_BACKOFF" envDefault:"10m" desc:"longest delay between a delivery's attempts" roles:"send-notification"`
	DeliveryPollInterval   time.Duration `env:"RFD_DELIVERY_POLL_INTERVAL" envDefault:"1s" desc:"how often due retries and deferred deliveries are looked for" roles:"send-notification"`

	SMTPHost     string `env:"RFD_SMTP_HOST" desc:"SMTP server of the email channel (unset = email deliveries fail as not configured)" roles:"send-notification,worker,cron"`
	SMTPPort     int    `env:"RFD_SMTP_PORT" envDefault:"587" desc:"SMTP port" roles:"send-notification,worker"`
	SMTPUsername string `env:"RFD_SMTP_USERNAME" desc:"SMTP user (unset = no AUTH)" roles:"send-notification,worker"`
	SMTPPassword string `env:"RFD_SMTP_PASSWORD" desc:"SMTP password" roles:"send-notification,worker"`
	SMTPTLS      string `env:"RFD_SMTP_TLS" envDefault:"starttls" desc:"SMTP transport security: none, starttls or tls" roles:"send-notification,worker"`
	SMTPFrom     string `env:"RFD_SMTP_FROM" envDefault:"RFD Notify <no-reply@rfd-notify.invalid>" desc:"From address of notification emails" roles:"send-notification,worker"`
	// Relays limit the connections one client may hold open, and the
	// e-mail channel keeps its sessions open to reuse them.
	SMTPMaxConnections int `env:"RFD_SMTP_MAX_CONNECTIONS" envDefault:"10" desc:"SMTP connections a process keeps open at most; an idle one carries the next e-mail and is closed after 30s unused; a send waits for a free one" roles:"send-notification,worker"`

	TwilioBaseURL    string `env:"RFD_TWILIO_BASE_URL" envDefault:"https://api.twilio.com" desc:"base URL of the Twilio-compatible SMS API" roles:"send-notification"`
	TwilioAccountSID string `env:"RFD_TWILIO_ACCOUNT_SID" desc:"SMS account SID (unset = SMS deliveries fail as not configured)" roles:"send-notification"`
	TwilioAuthToken  string `env:"RFD_TWILIO_AUTH_TOKEN" desc:"SMS auth token; also verifies X-Twilio-Signature on status callbacks" roles:"api,send-notification"`
	TwilioFrom       string `env:"RFD_TWILIO_FROM" desc:"sender number or messaging service of SMS" roles:"send-notification"`
	PublicURL        string `env:"RFD_PUBLIC_URL" desc:"public base URL of the API: the OpenAPI document's server, which the docs page's Try it calls, the base of provider status callbacks and of the $schema links of response bodies, never taken from a request's Host or X-Forwarded-Host (unset = http://localhost:PORT of RFD_HTTP_ADDR, or its host when one is named)" roles:"api,send-notification"`

	FCMBaseURL         string `env:"RFD_FCM_BASE_URL" envDefault:"https://fcm.googleapis.com" desc:"base URL of FCM HTTP v1" roles:"send-notification"`
	FCMProjectID       string `env:"RFD_FCM_PROJECT_ID" desc:"Firebase project of push (unset = push deliveries fail as not configured)" roles:"send-notification"`
	FCMCredentialsFile string `env:"RFD_FCM_CREDENTIALS_FILE" desc:"service-account JSON key file for FCM" roles:"send-notification"`
	FCMTokenURL        string `env:"RFD_FCM_TOKEN_URL" envDefault:"https://oauth2.googleapis.com/token" desc:"OAuth2 token endpoint of the service account" roles:"send-notification"`

	WebhookAllowLoopback bool `env:"RFD_WEBHOOK_ALLOW_LOOPBACK" envDefault:"false" desc:"test mode: allow webhook endpoints on loopback (private and link-local stay refused)" roles:"api,send-notification"`

	RateEmail           float64 `env:"RFD_RATE_EMAIL" envDefault:"50" desc:"email sends per second at most (token bucket)" roles:"send-notification"`
	RateSMS             float64 `env:"RFD_RATE_SMS" envDefault:"10" desc:"SMS sends per second at most" roles:"send-notification"`
	RatePush            float64 `env:"RFD_RATE_PUSH" envDefault:"100" desc:"push sends per second at most" roles:"send-notification"`
	RateWebhook         float64 `env:"RFD_RATE_WEBHOOK" envDefault:"50" desc:"webhook calls per second at most" roles:"send-notification"`
	SMSPerDoctorPerHour int     `env:"RFD_SMS_PER_DOCTOR_PER_HOUR" envDefault:"10" desc:"non-critical SMS per doctor per hour; more wait for the next slot" roles:"send-notification"`

	JWTPublicKeyFile string        `env:"RFD_JWT_PUBLIC_KEY_FILE" desc:"PEM file of the public key(s) (PKIX, PKCS#1 or certificates) that verify doctors' RS256/ES256 access tokens" roles:"api"`
	JWTJWKSURL       string        `env:"RFD_JWT_JWKS_URL" desc:"JWKS URL of user management's token signing keys (https; http only on loopback); cached, refetched on an unknown kid" roles:"api"`
	JWTJWKSRefresh   time.Duration `env:"RFD_JWT_JWKS_REFRESH" envDefault:"1h" desc:"how long fetched JWKS keys are used before the JWKS is fetched again" roles:"api"`
	JWTHS256Secret   string        `env:"RFD_JWT_HS256_SECRET" desc:"development only: a shared secret (at least 32 bytes) that makes HS256 tokens acceptable; leave unset in production" roles:"api"`
	JWTIssuer        string        `env:"RFD_JWT_ISSUER" desc:"the iss every doctor token must carry (required once a key is configured)" roles:"api"`
	JWTAudience      string        `env:"RFD_JWT_AUDIENCE" envDefault:"rfd-notify" desc:"the aud every doctor token must carry" roles:"api"`
	JWTLeeway        time.Duration `env:"RFD_JWT_LEEWAY" envDefault:"30s" desc:"clock skew tolerated on a token's exp, nbf and iat" roles:"api"`

	APIRatePerKey    float64 `env:"RFD_API_RATE_PER_KEY" envDefault:"50" desc:"API requests per second per API key (token bucket, burst of the same size); more are 429 with Retry-After" roles:"api"`
	APIRatePerDoctor float64 `env:"RFD_API_RATE_PER_DOCTOR" envDefault:"20" desc:"API requests per second per doctor (token bucket, burst of the same size); more are 429 with Retry-After" roles:"api"`
	StreamsPerDoctor int     `env:"RFD_STREAMS_PER_DOCTOR" envDefault:"5" desc:"open notification streams (SSE) one doctor may hold on one API process; one more is 429 with Retry-After" roles:"api"`
	StreamsMax       int     `env:"RFD_STREAMS_MAX" envDefault:"1000" desc:"open notification streams (SSE) of all doctors on one API process; one more is 429 with Retry-After" roles:"api"`
	CoveringMaxDays  int     `env:"RFD_COVERING_MAX_DAYS" envDefault:"30" desc:"longest period, in days, a doctor may name a colleague to cover for them (receiving copies of their notifications); a longer one is 422" roles:"api"`

	OTelEndpoint               string        `env:"RFD_OTEL_ENDPOINT" desc:"OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318 (unset = tracing off; W3C traceparent is still passed along)" roles:"all"`
	OTelServiceName            string        `env:"RFD_OTEL_SERVICE_NAME" envDefault:"rfd" desc:"service.name of the exported spans" roles:"all"`
	OTelSampleRatio            float64       `env:"RFD_OTEL_SAMPLE_RATIO" envDefault:"1" desc:"share of new traces sampled, 0 to 1; a trace started upstream keeps its sampling decision" roles:"all"`
	CronScheduledNotifications string        `env:"RFD_CRON_SCHEDULED_NOTIFICATIONS" envDefault:"@every 1m" desc:"cron schedule of the job publishing scheduled and quiet-hours-deferred deliveries that are due (off disables a job)" roles:"cron"`
	CronEscalations            string        `env:"RFD_CRON_ESCALATIONS" envDefault:"@every 1m" desc:"cron schedule of the critical-result escalation ladder" roles:"cron"`
	CronStuckDeliveries        string        `env:"RFD_CRON_STUCK_DELIVERIES" envDefault:"@every 5m" desc:"cron schedule of the sweep sending deliveries stuck in sending back to retry" roles:"cron"`
	CronDigests                string        `env:"RFD_CRON_DIGESTS" envDefault:"*/5 * * * *" desc:"cron schedule of the digest job (hourly and daily@HH:MM digests go out at the first run after their time)" roles:"cron"`
	CronWeeklySummary          string        `env:"RFD_CRON_WEEKLY_SUMMARY" envDefault:"0 1 * * 1" desc:"cron schedule (UTC) of the weekly doctor summary email of the past week (Monday to Sunday)" roles:"cron"`
	CronRetention              string        `env:"RFD_CRON_RETENTION" envDefault:"30 3 * * *" desc:"cron schedule (UTC) of the retention job" roles:"cron"`
	CronTimelinessReport       string        `env:"RFD_CRON_TIMELINESS_REPORT" envDefault:"0 6 * * 1" desc:"cron schedule (UTC) of the job e-mailing the critical-result timeliness report of the past week (Monday to Sunday) to RFD_TIMELINESS_REPORT_TO" roles:"cron"`
	TimelinessReportTo         string        `env:"RFD_TIMELINESS_REPORT_TO" desc:"e-mail address the weekly critical-result timeliness report goes to, sent over RFD_SMTP_* by the worker (unset = not e-mailed)" roles:"cron"`
	EscalationSLA              time.Duration `env:"RFD_ESCALATION_SLA" envDefault:"30m" desc:"a critical result unacknowledged this long escalates one step, and again after each further interval" roles:"api,cron"`
	EscalationOnCallDoctor     string        `env:"RFD_ESCALATION_ONCALL_DOCTOR" desc:"external user id of the on-call contact, the ladder's last step (unset = no on-call step)" roles:"cron"`
	StuckDeliveryTimeout       time.Duration `env:"RFD_STUCK_DELIVERY_TIMEOUT" envDefault:"15m" desc:"a delivery in sending this long goes back to retry" roles:"cron"`
	RetentionNotifications     time.Duration `env:"RFD_RETENTION_NOTIFICATIONS" envDefault:"17520h" desc:"notifications, their deliveries and attempts, and sent report e-mails are deleted after this long (0 = kept forever)" roles:"cron"`
	RetentionInbox             time.Duration `env:"RFD_RETENTION_INBOX" envDefault:"720h" desc:"inbox rows and cron runs are deleted after this long (0 = kept forever)" roles:"cron"`
	RetentionTopics            time.Duration `env:"RFD_RETENTION_TOPICS" envDefault:"168h" desc:"rows of SQL topics every consumer group has acknowledged are deleted after this long (0 = kept forever)" roles:"cron"`
	RetentionPoison            time.Duration `env:"RFD_RETENTION_POISON" envDefault:"2160h" desc:"replayed or discarded poison messages are deleted this long after their resolution (0 = kept forever)" roles:"cron"`
	RetentionAudit             time.Duration `env:"RFD_RETENTION_AUDIT" envDefault:"52560h" desc:"audit rows (API access, logins) are deleted after this long, 6 years by default (0 = kept forever)" roles:"cron"`
	BroadcastChunkSize         int           `env:"RFD_BROADCAST_CHUNK_SIZE" envDefault:"500" desc:"doctors one broadcast fan-out transaction notifies" roles:"worker"`
	BroadcastPause             time.Duration `env:"RFD_BROADCAST_PAUSE" envDefault:"100ms" desc:"throttle of the broadcast fan-out: the pause between two chunks" roles:"worker"`
	BroadcastPollInterval      time.Duration `env:"RFD_BROADCAST_POLL_INTERVAL" envDefault:"2s" desc:"how often the worker looks for new broadcasts" roles:"worker"`
	RetentionBatch             int           `env:"RFD_RETENTION_BATCH" envDefault:"1000" desc:"rows one retention delete removes; each batch is its own short transaction" roles:"cron"`
}

// The long-running roles besides the five consumers (Consumers): each
// reads only the options whose roles tag names it. serve runs every role
// in one process and reads every option.
const (
	RoleAPI    = "api"
	RoleWorker = "worker"
	RoleCron   = "cron"
	RoleServe  = "serve"
)

// Roles are the roles of the roles tags: the api, the worker, the cron and
// each consumer (`rfd consume NAME`). serve is not among them: it reads
// every option.
var Roles = append([]string{RoleAPI, RoleWorker, RoleCron}, Consumers...)

// Shorthands of the roles tag.
const (
	// rolesAll: every role (and every command: the database and the
	// transport are everyone's).
	rolesAll = "all"
	// rolesRouted: the roles that consume messages through the router
	// (the api's in-app broadcast, the worker's drains, the consumers).
	rolesRouted = "routed"
)

// expandRoles turns a roles tag into the roles it names, in Roles' order;
// "serve" names none of them (serve alone reads the option).
func expandRoles(tag string) []string {
	named := map[string]bool{}
	for _, r := range strings.Split(tag, ",") {
		switch r = strings.TrimSpace(r); r {
		case rolesAll:
			for _, x := range Roles {
				named[x] = true
			}
		case rolesRouted:
			named[RoleAPI], named[RoleWorker] = true, true
			for _, x := range Consumers {
				named[x] = true
			}
		default:
			named[r] = true
		}
	}
	out := make([]string, 0, len(named))
	for _, r := range Roles {
		if named[r] {
			out = append(out, r)
		}
	}
	return out
}

// Field describes one option for flags, error messages and the README.
type Field struct {
	Env     string
	Flag    string
	Default string
	Desc    string
	Type    string
	// RolesTag is the roles tag as written (docs/configuration.md's roles
	// column): role names, "all", "routed" or "serve".
	RolesTag string
	// Roles are the roles that read the option (serve aside, which reads
	// them all).
	Roles []string
}

// ReadBy says whether role reads the option; serve reads every option.
func (f Field) ReadBy(role string) bool {
	return role == RoleServe || slices.Contains(f.Roles, role)
}

// RoleEnv lists the variables role reads, in declaration order.
func RoleEnv(role string) []string {
	var out []string
	for _, f := range Fields() {
		if f.ReadBy(role) {
			out = append(out, f.Env)
		}
	}
	return out
}

// Fields lists every option in declaration order.
func Fields() []Field {
	t := reflect.TypeOf(Config{})
	out := make([]Field, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("env")
		out = append(out, Field{
			Env:      name,
			Flag:     FlagName(name),
			Default:  f.Tag.Get("envDefault"),
			Desc:     f.Tag.Get("desc"),
			Type:     f.Type.String(),
			RolesTag: f.Tag.Get("roles"),
			Roles:    expandRoles(f.Tag.Get("roles")),
		})
	}
	return out
}

// FlagName maps RFD_HTTP_ADDR to http-addr.
func FlagName(envName string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(envName, "RFD_")), "_", "-")
}

// BindFlags registers one string flag per option. Flags are kept as strings
// and parsed by the same code as the environment, so both give the same
// errors for the same bad value.
func BindFlags(fs *pflag.FlagSet) {
	for _, f := range Fields() {
		def := f.Default
		if def == "" {
			def = "(unset)"
		}
		fs.String(f.Flag, "", fmt.Sprintf("%s [$%s, default %s]", f.Desc, f.Env, def))
	}
}

// Load reads the environment, lets flags that were set on the command line
// override it, and validates the result. fs may be nil.
func Load(fs *pflag.FlagSet) (Config, error) {
	environ := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		environ[k] = v
	}
	if fs != nil {
		for _, f := range Fields() {
			fl := fs.Lookup(f.Flag)
			if fl != nil && fl.Changed {
				environ[f.Env] = fl.Value.String()
			}
		}
	}

	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		return Config{}, describe(err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// describe turns the library's error into one line that names the variable.
func describe(err error) error {
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var pe env.ParseError
	if errors.As(err, &pe) {
		if f, ok := reflect.TypeOf(Config{}).FieldByName(pe.Name); ok {
			name := f.Tag.Get("env")
			return fmt.Errorf("%s (--%s): %v", name, FlagName(name), unwrapAll(pe.Err))
		}
	}
	return fmt.Errorf("configuration: %v", err)
}

func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// Validate checks the values the parser cannot: enums, URLs and ranges.
func (c Config) Validate() error {
	bad := func(envName, format string, args ...any) error {
		return fmt.Errorf("%s (--%s): %s", envName, FlagName(envName), fmt.Sprintf(format, args...))
	}

	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		return bad("RFD_DATABASE_URL", "not a URL: %v", err)
	}
	switch u.Scheme {
	case "sqlite":
		if c.SQLitePath() == "" {
			return bad("RFD_DATABASE_URL", "sqlite URL names no file (want sqlite://./rfd.db or sqlite:///abs/path.db)")
		}
	case "postgres", "postgresql":
	default:
		return bad("RFD_DATABASE_URL", "unsupported scheme %q (want sqlite or postgres)", u.Scheme)
	}

	switch c.Transport {
	case TransportSQL:
	case TransportKafka:
		if len(c.KafkaBrokers) == 0 || slices.Contains(c.KafkaBrokers, "") {
			return bad("RFD_KAFKA_BROKERS", "empty broker address")
		}
		if c.KafkaHeartbeatInterval <= 0 || c.KafkaHeartbeatInterval >= c.KafkaSessionTimeout {
			return bad("RFD_KAFKA_HEARTBEAT_INTERVAL", "must be positive and below RFD_KAFKA_SESSION_TIMEOUT (%s), got %s", c.KafkaSessionTimeout, c.KafkaHeartbeatInterval)
		}
		if c.KafkaInstanceID != "" && !validInstanceID(c.KafkaInstanceID) {
			return bad("RFD_KAFKA_INSTANCE_ID", "invalid value %q (want 1-249 of a-z A-Z 0-9 . _ -)", c.KafkaInstanceID)
		}
		if c.IsSQLite() {
			return bad("RFD_TRANSPORT", "kafka needs a postgres RFD_DATABASE_URL (the outbox relay runs in several replicas; SQLite is single-process)")
		}
	default:
		return bad("RFD_TRANSPORT", "invalid value %q (want sql or kafka)", c.Transport)
	}

	for name, addr := range map[string]string{"RFD_HTTP_ADDR": c.HTTPAddr, "RFD_ADMIN_ADDR": c.AdminAddr} {
		if !strings.Contains(addr, ":") {
			return bad(name, "invalid listen address %q (want host:port or :port)", addr)
		}
	}
	if c.ConsumerGroupPrefix == "" {
		return bad("RFD_CONSUMER_GROUP_PREFIX", "must not be empty")
	}

	topics := []struct{ env, v string }{
		{"RFD_TOPIC_CHECKUP_EVENTS", c.TopicCheckupEvents},
		{"RFD_TOPIC_ORDER_HISTORY_EVENTS", c.TopicOrderHistoryEvents},
		{"RFD_TOPIC_USER_CREATED", c.TopicUserCreated},
		{"RFD_TOPIC_INTERNAL_LOGIN", c.TopicInternalLogin},
		{"RFD_TOPIC_SEND_NOTIFICATION", c.TopicSendNotification},
		{"RFD_TOPIC_POISON", c.TopicPoison},
		{"RFD_TOPIC_OUTBOX", c.TopicOutbox},
		{"RFD_TOPIC_INAPP", c.TopicInApp},
		{"RFD_TOPIC_REPORT_MAIL", c.TopicReportMail},
	}
	seen := map[string]string{}
	for _, t := range topics {
		if !validTopic(t.v) {
			return bad(t.env, "invalid topic name %q (letters, digits, '-', '_' and '.', at most 200)", t.v)
		}
		if other, dup := seen[t.v]; dup {
			return bad(t.env, "topic %q is already used by %s", t.v, other)
		}
		seen[t.v] = t.env
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("RFD_LOG_LEVEL", "invalid value %q (want debug, info, warn or error)", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return bad("RFD_LOG_FORMAT", "invalid value %q (want json or text)", c.LogFormat)
	}

	if c.RetryMaxAttempts < 1 {
		return bad("RFD_RETRY_MAX_ATTEMPTS", "must be at least 1, got %d", c.RetryMaxAttempts)
	}
	if c.RetryInitialInterval <= 0 {
		return bad("RFD_RETRY_INITIAL_INTERVAL", "must be positive, got %s", c.RetryInitialInterval)
	}
	if c.RetryMaxInterval < c.RetryInitialInterval {
		return bad("RFD_RETRY_MAX_INTERVAL", "must be at least RFD_RETRY_INITIAL_INTERVAL (%s), got %s", c.RetryInitialInterval, c.RetryMaxInterval)
	}
	names := make([]string, 0, len(c.Throttle))
	for name := range c.Throttle {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !slices.Contains(Consumers, name) {
			return bad("RFD_THROTTLE", "unknown consumer %q (want one of %s)", name, strings.Join(Consumers, ", "))
		}
		if c.Throttle[name] <= 0 {
			return bad("RFD_THROTTLE", "rate of %s must be a positive number per second, got %d", name, c.Throttle[name])
		}
	}
	if c.HandlerTimeout <= 0 {
		return bad("RFD_HANDLER_TIMEOUT", "must be positive, got %s", c.HandlerTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		return bad("RFD_SHUTDOWN_TIMEOUT", "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.SQLPollInterval <= 0 {
		return bad("RFD_SQL_POLL_INTERVAL", "must be positive, got %s", c.SQLPollInterval)
	}
	if u, err := url.Parse(c.PortalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("RFD_PORTAL_URL", "want an absolute http(s) URL, got %q", c.PortalURL)
	}
	for _, st := range c.OrderNotifyStatuses {
		if !slices.Contains(OrderStatuses, st) {
			return bad("RFD_ORDER_NOTIFY_STATUSES", "unknown order status %q (want some of %s)", st, strings.Join(OrderStatuses, ", "))
		}
	}
	if c.FailedLoginThreshold < 1 {
		return bad("RFD_FAILED_LOGIN_THRESHOLD", "must be at least 1, got %d", c.FailedLoginThreshold)
	}
	if c.FailedLoginWindow <= 0 {
		return bad("RFD_FAILED_LOGIN_WINDOW", "must be positive, got %s", c.FailedLoginWindow)
	}
	if c.NewDeviceWindow <= 0 {
		return bad("RFD_NEW_DEVICE_WINDOW", "must be positive, got %s", c.NewDeviceWindow)
	}
	if c.DeliveryMaxAttempts < 1 {
		return bad("RFD_DELIVERY_MAX_ATTEMPTS", "must be at least 1, got %d", c.DeliveryMaxAttempts)
	}
	if c.DeliveryInitialBackoff <= 0 || c.DeliveryMaxBackoff < c.DeliveryInitialBackoff {
		return bad("RFD_DELIVERY_MAX_BACKOFF", "must be at least RFD_DELIVERY_INITIAL_BACKOFF (%s) and both positive", c.DeliveryInitialBackoff)
	}
	if c.DeliveryPollInterval <= 0 {
		return bad("RFD_DELIVERY_POLL_INTERVAL", "must be positive, got %s", c.DeliveryPollInterval)
	}
	switch c.SMTPTLS {
	case "none", "starttls", "tls":
	default:
		return bad("RFD_SMTP_TLS", "invalid value %q (want none, starttls or tls)", c.SMTPTLS)
	}
	if c.SMTPMaxConnections < 1 {
		return bad("RFD_SMTP_MAX_CONNECTIONS", "must be at least 1, got %d", c.SMTPMaxConnections)
	}
	for name, v := range map[string]float64{"RFD_RATE_EMAIL": c.RateEmail, "RFD_RATE_SMS": c.RateSMS, "RFD_RATE_PUSH": c.RatePush, "RFD_RATE_WEBHOOK": c.RateWebhook} {
		if v <= 0 {
			return bad(name, "must be positive, got %v", v)
		}
	}
	for name, v := range map[string]float64{"RFD_API_RATE_PER_KEY": c.APIRatePerKey, "RFD_API_RATE_PER_DOCTOR": c.APIRatePerDoctor} {
		if !(v > 0) || math.IsInf(v, 1) {
			return bad(name, "must be a positive number of requests per second, got %v", v)
		}
	}
	for name, v := range map[string]int{"RFD_STREAMS_PER_DOCTOR": c.StreamsPerDoctor, "RFD_STREAMS_MAX": c.StreamsMax} {
		if v < 1 {
			return bad(name, "must be at least 1, got %d", v)
		}
	}
	if c.StreamsPerDoctor > c.StreamsMax {
		return bad("RFD_STREAMS_PER_DOCTOR", "must not exceed RFD_STREAMS_MAX (%d), got %d", c.StreamsMax, c.StreamsPerDoctor)
	}
	if !(c.OTelSampleRatio >= 0 && c.OTelSampleRatio <= 1) {
		return bad("RFD_OTEL_SAMPLE_RATIO", "must be between 0 and 1, got %v", c.OTelSampleRatio)
	}
	if c.OTelEndpoint != "" {
		if u, err := url.Parse(c.OTelEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("RFD_OTEL_ENDPOINT", "want an absolute http(s) URL, got %q", c.OTelEndpoint)
		}
	}
	if c.CoveringMaxDays < 1 {
		return bad("RFD_COVERING_MAX_DAYS", "must be at least 1, got %d", c.CoveringMaxDays)
	}
	if c.SMSPerDoctorPerHour < 1 {
		return bad("RFD_SMS_PER_DOCTOR_PER_HOUR", "must be at least 1, got %d", c.SMSPerDoctorPerHour)
	}
	if c.PublicURL == "" && c.PublicBaseURL() == "" {
		return bad("RFD_HTTP_ADDR", "invalid listen address %q (want host:port or :port)", c.HTTPAddr)
	}
	for name, raw := range map[string]string{"RFD_PUBLIC_URL": c.PublicBaseURL(), "RFD_TWILIO_BASE_URL": c.TwilioBaseURL, "RFD_FCM_BASE_URL": c.FCMBaseURL, "RFD_FCM_TOKEN_URL": c.FCMTokenURL} {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(name, "want an absolute http(s) URL, got %q", raw)
		}
	}
	if err := c.validateCron(bad); err != nil {
		return err
	}
	if c.PendingReportAfter <= 0 {
		return bad("RFD_PENDING_REPORT_AFTER", "must be positive, got %s", c.PendingReportAfter)
	}
	return c.validateJWT(bad)
}

// validateJWT checks the doctors' token settings. No key at all is valid
// (doctor operations then answer 401); once a key is configured the issuer
// and audience must be set, so no token is accepted without both checks.
func (c Config) validateJWT(bad func(envName, format string, args ...any) error) error {
	if c.JWTJWKSURL != "" {
		u, err := url.Parse(c.JWTJWKSURL)
		switch {
		case err != nil || u.Host == "":
			return bad("RFD_JWT_JWKS_URL", "want an absolute https URL, got %q", c.JWTJWKSURL)
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		default:
			return bad("RFD_JWT_JWKS_URL", "want https (http only on loopback), got %q", c.JWTJWKSURL)
		}
	}
	if c.JWTJWKSRefresh < time.Second {
		return bad("RFD_JWT_JWKS_REFRESH", "must be at least 1s, got %s", c.JWTJWKSRefresh)
	}
	if c.JWTHS256Secret != "" && len(c.JWTHS256Secret) < 32 {
		return bad("RFD_JWT_HS256_SECRET", "must be at least 32 bytes, got %d", len(c.JWTHS256Secret))
	}
	if c.JWTLeeway < 0 || c.JWTLeeway > 5*time.Minute {
		return bad("RFD_JWT_LEEWAY", "must be between 0 and 5m, got %s", c.JWTLeeway)
	}
	if c.JWTConfigured() {
		if strings.TrimSpace(c.JWTIssuer) == "" {
			return bad("RFD_JWT_ISSUER", "must be set when a token key is configured (RFD_JWT_PUBLIC_KEY_FILE, RFD_JWT_JWKS_URL or RFD_JWT_HS256_SECRET)")
		}
		if strings.TrimSpace(c.JWTAudience) == "" {
			return bad("RFD_JWT_AUDIENCE", "must be set when a token key is configured")
		}
	}
	return nil
}

// validateCron checks the cron schedules and the jobs' settings.
func (c Config) validateCron(bad func(envName, format string, args ...any) error) error {
	for name, spec := range map[string]string{
		"RFD_CRON_SCHEDULED_NOTIFICATIONS": c.CronScheduledNotifications, "RFD_CRON_ESCALATIONS": c.CronEscalations,
		"RFD_CRON_STUCK_DELIVERIES": c.CronStuckDeliveries, "RFD_CRON_RETENTION": c.CronRetention, "RFD_CRON_DIGESTS": c.CronDigests,
		"RFD_CRON_WEEKLY_SUMMARY": c.CronWeeklySummary, "RFD_CRON_TIMELINESS_REPORT": c.CronTimelinessReport,
	} {
		if strings.TrimSpace(spec) == "off" {
			continue
		}
		if _, err := cronParser.Parse(spec); err != nil {
			return bad(name, "invalid cron schedule %q (five fields, a descriptor such as @hourly or @every 10m, or off): %v", spec, err)
		}
	}
	if c.TimelinessReportTo != "" {
		if a, err := mail.ParseAddress(c.TimelinessReportTo); err != nil || a.Address != c.TimelinessReportTo {
			return bad("RFD_TIMELINESS_REPORT_TO", "want one plain e-mail address such as ops@hospital.example, got %q", c.TimelinessReportTo)
		}
		if c.SMTPHost == "" {
			return bad("RFD_TIMELINESS_REPORT_TO", "is set but RFD_SMTP_HOST is not: the report could not be e-mailed")
		}
	}
	if c.EscalationSLA <= 0 {
		return bad("RFD_ESCALATION_SLA", "must be positive, got %s", c.EscalationSLA)
	}
	if c.StuckDeliveryTimeout <= 0 {
		return bad("RFD_STUCK_DELIVERY_TIMEOUT", "must be positive, got %s", c.StuckDeliveryTimeout)
	}
	for name, d := range map[string]time.Duration{
		"RFD_RETENTION_NOTIFICATIONS": c.RetentionNotifications, "RFD_RETENTION_INBOX": c.RetentionInbox, "RFD_RETENTION_TOPICS": c.RetentionTopics,
		"RFD_RETENTION_POISON": c.RetentionPoison, "RFD_RETENTION_AUDIT": c.RetentionAudit,
	} {
		if d < 0 {
			return bad(name, "must not be negative, got %s", d)
		}
	}
	if c.BroadcastChunkSize < 1 || c.BroadcastChunkSize > 10000 {
		return bad("RFD_BROADCAST_CHUNK_SIZE", "must be between 1 and 10000, got %d", c.BroadcastChunkSize)
	}
	if c.BroadcastPause < 0 {
		return bad("RFD_BROADCAST_PAUSE", "must not be negative, got %s", c.BroadcastPause)
	}
	if c.BroadcastPollInterval <= 0 {
		return bad("RFD_BROADCAST_POLL_INTERVAL", "must be positive, got %s", c.BroadcastPollInterval)
	}
	if c.CheckupEventsBatch < 1 {
		return bad("RFD_CHECKUP_EVENTS_BATCH", "must be at least 1, got %d", c.CheckupEventsBatch)
	}
	if c.DeliveriesBatch < 1 {
		return bad("RFD_DELIVERIES_BATCH", "must be at least 1, got %d", c.DeliveriesBatch)
	}
	if c.RetentionBatch < 1 {
		return bad("RFD_RETENTION_BATCH", "must be at least 1, got %d", c.RetentionBatch)
	}
	return nil
}

// cronParser is the cron package's parser (cron.Parse), repeated here so
// configuration does not depend on the job runner.
var cronParser = robfig.NewParser(robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

// PublicBaseURL is where clients reach the API, without a trailing slash:
// RFD_PUBLIC_URL, or else the listen address RFD_HTTP_ADDR as seen from this
// machine (":8080" and "0.0.0.0:8080" are http://localhost:8080).
func (c Config) PublicBaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// JWTConfigured reports whether any key that verifies doctors' tokens is set.
func (c Config) JWTConfigured() bool {
	return c.JWTPublicKeyFile != "" || c.JWTJWKSURL != "" || c.JWTHS256Secret != ""
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func validTopic(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// IsSQLite reports whether the database is the embedded SQLite file.
func (c Config) IsSQLite() bool { return strings.HasPrefix(c.DatabaseURL, "sqlite:") }

// SQLitePath is the file named by a sqlite:// URL: sqlite://./rfd.db is
// relative to the working directory, sqlite:///var/lib/rfd.db is absolute.
func (c Config) SQLitePath() string {
	rest := strings.TrimPrefix(c.DatabaseURL, "sqlite://")
	if rest == c.DatabaseURL {
		rest = strings.TrimPrefix(c.DatabaseURL, "sqlite:")
	}
	path, _, _ := strings.Cut(rest, "?")
	return path
}

// ConsumerGroup is the consumer group of a consumer.
func (c Config) ConsumerGroup(consumer string) string {
	return c.ConsumerGroupPrefix + "." + consumer
}

// TopicOf is the topic a consumer reads.
func (c Config) TopicOf(consumer string) string {
	switch consumer {
	case ConsumerCheckupEvents:
		return c.TopicCheckupEvents
	case ConsumerOrderHistoryEvents:
		return c.TopicOrderHistoryEvents
	case ConsumerSendNotification:
		return c.TopicSendNotification
	case ConsumerUserCreated:
		return c.TopicUserCreated
	case ConsumerInternalLogin:
		return c.TopicInternalLogin
	}
	return ""
}

// validInstanceID applies the broker's rule for group instance ids (that of
// topic names), so a bad id fails at start-up under its RFD_ name.
func validInstanceID(id string) bool {
	if len(id) > 249 || id == "." || id == ".." {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}
