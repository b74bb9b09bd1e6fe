// Package cli is the command line of the rfd binary (cobra). Commands build
// their role through the wire injectors handed to Execute.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/rfd-notify/rfd/api"
	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/platform/health"
	"github.com/rfd-notify/rfd/internal/platform/tracing"
	"github.com/rfd-notify/rfd/internal/roles"
)

// Runner is a long-running role.
type Runner interface {
	Run(ctx context.Context) error
}

// Injectors build each role; they are the wire injectors of wire.go.
type Injectors struct {
	Serve   func(ctx context.Context, cfg config.Config) (*roles.Serve, func(), error)
	API     func(ctx context.Context, cfg config.Config) (*roles.API, func(), error)
	Consume func(ctx context.Context, cfg config.Config, name roles.ConsumerName) (*roles.Consumer, func(), error)
	Worker  func(ctx context.Context, cfg config.Config) (*roles.Worker, func(), error)
	Cron    func(ctx context.Context, cfg config.Config) (*roles.Cron, func(), error)
	Migrate func(ctx context.Context, cfg config.Config, create roles.CreateDatabase) (*roles.Migrate, func(), error)
	APIKeys func(ctx context.Context, cfg config.Config) (*roles.APIKeyManager, func(), error)
	Ops     func(ctx context.Context, cfg config.Config) (*roles.Ops, func(), error)
	Poison  func(ctx context.Context, cfg config.Config) (*roles.PoisonManager, func(), error)
	Publish func(ctx context.Context, cfg config.Config) (*roles.EventPublisher, func(), error)
}

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

type usageError struct{ error }

// Execute runs the command line and returns the process exit code.
func Execute(inj Injectors, args []string, stdout, stderr io.Writer) int {
	root := newRoot(inj, stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	// One line, whatever the error: a driver may join several (one per
	// address tried) with newlines.
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	_, _ = fmt.Fprintln(stderr, "rfd:", msg)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var uc roles.ErrUnknownConsumer
	if errors.As(err, &uc) {
		return ExitUsage
	}
	return ExitError
}

func newRoot(inj Injectors, stdout io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "rfd",
		Short:         "RFD Notify: notifications about referred patients for referring doctors",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	config.BindFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// A subcommand's own flags come first; the configuration every command
	// shares follows under its own heading.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "Global Flags:",
		"Configuration flags (each also an RFD_* environment variable; a flag wins over the variable):", 1))

	load := func(cmd *cobra.Command) (config.Config, error) {
		return config.Load(cmd.Flags())
	}
	runRole := func(build func(ctx context.Context, cfg config.Config) (Runner, func(), error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			stopTracing, err := tracing.Setup(ctx, cfg)
			if err != nil {
				return err
			}
			defer func() {
				// Flush the spans of the shutdown itself, briefly.
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = stopTracing(sctx)
			}()
			role, cleanup, err := build(ctx, cfg)
			if err != nil {
				return err
			}
			defer cleanup()
			return role.Run(ctx)
		}
	}

	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run every role in one process (the default: embedded SQLite, SQL transport)",
		Args:  cobra.NoArgs,
		RunE: runRole(func(ctx context.Context, cfg config.Config) (Runner, func(), error) {
			return inj.Serve(ctx, cfg)
		}),
	}
	root.RunE = serve.RunE
	root.Args = cobra.NoArgs

	root.AddCommand(serve,
		&cobra.Command{
			Use:   "api",
			Short: "Run the REST API",
			Args:  cobra.NoArgs,
			RunE: runRole(func(ctx context.Context, cfg config.Config) (Runner, func(), error) {
				return inj.API(ctx, cfg)
			}),
		},
		&cobra.Command{
			Use:       "consume NAME",
			Short:     "Run one consumer: " + strings.Join(config.Consumers, ", "),
			ValidArgs: config.Consumers,
			Args: func(_ *cobra.Command, args []string) error {
				if len(args) != 1 {
					return usageError{fmt.Errorf("consume needs exactly one consumer name; valid consumers: %s", strings.Join(config.Consumers, ", "))}
				}
				if err := roles.ValidConsumer(args[0]); err != nil {
					return usageError{err}
				}
				return nil
			},
			RunE: func(cmd *cobra.Command, args []string) error {
				return runRole(func(ctx context.Context, cfg config.Config) (Runner, func(), error) {
					return inj.Consume(ctx, cfg, roles.ConsumerName(args[0]))
				})(cmd, args)
			},
		},
		&cobra.Command{
			Use:   "worker",
			Short: "Run the background work: outbox relay, poison drain, report e-mails, pending-notification sweep, broadcast fan-out",
			Long: "The worker runs, in one process:\n" +
				"  - the outbox forwarder: relays committed outbox messages to Kafka (transport kafka; on the SQL transport the outbox writes to its topics directly);\n" +
				"  - the poison drain: stores each message of RFD_TOPIC_POISON in the poison table that `rfd poison` and the admin API work on;\n" +
				"  - the report mailer: e-mails the cron's reports (RFD_TOPIC_REPORT_MAIL) over RFD_SMTP_*;\n" +
				"  - the pending-notification sweep: releases notifications that were waiting for a doctor who now exists, and reports those waiting longer than RFD_PENDING_REPORT_AFTER;\n" +
				"  - the broadcast fan-out: turns stored broadcasts into notifications, in resumable chunks;\n" +
				"  - consumer lag and outbox backlog metrics for every consumer group.\n" +
				"It serves /healthz, /readyz and /metrics on RFD_ADMIN_ADDR.",
			Args: cobra.NoArgs,
			RunE: runRole(func(ctx context.Context, cfg config.Config) (Runner, func(), error) {
				return inj.Worker(ctx, cfg)
			}),
		},
		&cobra.Command{
			Use:   "cron",
			Short: "Run the scheduled jobs",
			Args:  cobra.NoArgs,
			RunE: runRole(func(ctx context.Context, cfg config.Config) (Runner, func(), error) {
				return inj.Cron(ctx, cfg)
			}),
		},
		migrateCmd(inj, load, stdout),
		lagCmd(inj, load, stdout),
		outboxCmd(inj, load, stdout),
		apikeyCmd(inj, load, stdout),
		tokenCmd(load, stdout),
		poisonCmd(inj, load, stdout),
		publishCmd(inj, load, os.Stdin, stdout),
		openapiCmd(stdout),
	)
	return root
}

func migrateCmd(inj Injectors, load func(*cobra.Command) (config.Config, error), stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate up|down|status",
		Short: "Apply, roll back or list database migrations",
		Long: "up applies every pending migration, as one group; it creates an embedded SQLite database that does not exist yet.\n" +
			"down rolls back the last group: the migrations the last `up` applied, dropping the tables and columns they added\n" +
			"(and the rows in them), newest first. Run it only to undo a deployment's migration step, with the previous binary next.\n" +
			"status lists every migration and whether it is applied.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
				return usageError{errors.New("migrate needs one of: up, down, status")}
			}
			return nil
		},
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			// Only `up` may create the database: status and down on a
			// missing SQLite file say so instead of making an empty one.
			m, cleanup, err := inj.Migrate(cmd.Context(), cfg, roles.CreateDatabase(args[0] == "up"))
			if err != nil {
				return err
			}
			defer cleanup()
			switch args[0] {
			case "up":
				return m.Up(cmd.Context(), stdout)
			case "down":
				return m.Down(cmd.Context(), stdout)
			default:
				return m.Status(cmd.Context(), stdout)
			}
		},
	}
	return cmd
}

func openapiCmd(stdout io.Writer) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "openapi",
		Short: "Print the OpenAPI 3.1 description of the REST API",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			spec := api.New(&health.Checks{}, prometheus.NewRegistry()).OpenAPI()
			var out []byte
			var err error
			switch format {
			case "yaml":
				out, err = spec.YAML()
			case "json":
				out, err = spec.MarshalJSON()
			default:
				return usageError{fmt.Errorf("--format: want yaml or json, got %q", format)}
			}
			if err != nil {
				return fmt.Errorf("render openapi: %w", err)
			}
			_, err = stdout.Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "yaml", "yaml or json")
	return cmd
}

func opsCommand(inj Injectors, load func(*cobra.Command) (config.Config, error), run func(context.Context, *roles.Ops) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cfg, err := load(cmd)
		if err != nil {
			return err
		}
		ops, cleanup, err := inj.Ops(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		defer cleanup()
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		return run(ctx, ops)
	}
}

func lagCmd(inj Injectors, load func(*cobra.Command) (config.Config, error), stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "lag",
		Short: "Print each consumer group's lag on its topic (messages, age of the oldest) and, on Kafka, the outbox backlog",
		Args:  cobra.NoArgs,
		RunE: opsCommand(inj, load, func(ctx context.Context, o *roles.Ops) error {
			return o.Lag(ctx, stdout)
		}),
	}
}

func outboxCmd(inj Injectors, load func(*cobra.Command) (config.Config, error), stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outbox status",
		Short: "Inspect the transactional outbox",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] != "status" {
				return usageError{errors.New("outbox needs: status")}
			}
			return nil
		},
		ValidArgs: []string{"status"},
		RunE: opsCommand(inj, load, func(ctx context.Context, o *roles.Ops) error {
			return o.OutboxStatus(ctx, stdout)
		}),
	}
	return cmd
}
