package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/rfd-notify/rfd/internal/platform/config"
	"github.com/rfd-notify/rfd/internal/roles"
)

// publishCmd is `rfd publish`: one message, the bytes of a file, published
// to a consumer's topic through the outbox as a producer would, e.g. to
// re-inject an exported event or to drive a consumer from a file.
func publishCmd(inj Injectors, load func(*cobra.Command) (config.Config, error), stdin io.Reader, stdout io.Writer) *cobra.Command {
	var req roles.PublishRequest
	cmd := &cobra.Command{
		Use:   "publish --topic TOPIC --file FILE|- [--id ID] [--ce-type TYPE] [--key PARTITION_KEY]",
		Short: "Publish a file's bytes as one message to a consumer's topic, through the outbox (NOT validated)",
		Long: "Publishes the bytes of FILE (- reads standard input), as they are, as one message to TOPIC through the\n" +
			"outbox of the configured transport (SQL topics, or Kafka via the worker's forwarder), in one transaction with\n" +
			"an audit row naming the OS user. TOPIC is one of the consumers' topics as configured (by default\n" +
			"checkup-events, order-history-events, send-notification, user-created, internal-login).\n\n" +
			"The payload is NOT validated: it reaches the consumer exactly as a producer's message would, and the\n" +
			"consumer poisons what it cannot use (see `rfd poison list`). Use POST /v1/events/{type} to have an event\n" +
			"checked against its contract before it is accepted.\n\n" +
			"CloudEvents metadata: ce_id is --id, else a new UUID; it is also the message id the consumers deduplicate\n" +
			"on, so publishing the same --id again acts once. ce_type is --ce-type, else the topic's type; ce_source is\n" +
			"/rfd-notify/cli/<OS user>; ce_time is now; ce_specversion 1.0. --key is the partition key (the Kafka record\n" +
			"key: give the aggregate id, e.g. the order id, to keep its events in order); without it the message id is.\n" +
			"The database must exist and be migrated (`rfd migrate up`). At most 1 MiB.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Topic == "" || req.File == "" {
				return usageError{errors.New("publish needs --topic and --file (- for standard input)")}
			}
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if err := req.Validate(cfg); err != nil {
				return usageError{err}
			}
			if inj.Publish == nil {
				return errors.New("publish: this build has no publisher")
			}
			// The database first: a refused database is said before
			// standard input is waited for.
			p, cleanup, err := inj.Publish(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer cleanup()
			payload, err := readPayload(req.File, stdin)
			if err != nil {
				return err
			}
			r := req
			r.Payload = payload
			out, err := p.Publish(cmd.Context(), operator(), r)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "published %s to %s (ce_type %s, ce_source %s, %d bytes, not validated)\n",
				out.ID, out.Topic, out.Type, out.Source, out.Bytes)
			return err
		},
	}
	cmd.Flags().StringVar(&req.Topic, "topic", "", "the consumer's topic to publish to")
	cmd.Flags().StringVar(&req.File, "file", "", "the payload: a file, or - for standard input")
	cmd.Flags().StringVar(&req.ID, "id", "", "ce_id and message id, the consumers' deduplication key (default: a new UUID)")
	cmd.Flags().StringVar(&req.Type, "ce-type", "", "ce_type (default: the topic's type, e.g. rfd.checkup.v1)")
	cmd.Flags().StringVar(&req.Key, "key", "", "partition key, the Kafka record key (default: none, the message id)")
	return cmd
}

// readPayload reads the file, or standard input for "-", up to
// roles.MaxPublishBytes.
func readPayload(file string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, roles.MaxPublishBytes+1))
	if err != nil {
		return nil, fmt.Errorf("publish: read %s: %w", file, err)
	}
	if len(b) > roles.MaxPublishBytes {
		return nil, fmt.Errorf("publish: %s is larger than %d bytes", file, roles.MaxPublishBytes)
	}
	return b, nil
}
