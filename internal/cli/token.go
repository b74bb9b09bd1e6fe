package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/rfd-notify/rfd/internal/auth"
	"github.com/rfd-notify/rfd/internal/platform/config"
)

// tokenCmd is `rfd token`: a short-lived HS256 doctor token for a
// development server, signed with RFD_JWT_HS256_SECRET. It needs no
// database; it refuses when no development secret is configured, since
// such a server accepts only user management's own tokens.
func tokenCmd(load func(*cobra.Command) (config.Config, error), stdout io.Writer) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token --doctor EXTERNAL_USER_ID [--ttl DURATION]",
		Short: "Mint a short-lived development doctor token (HS256, needs RFD_JWT_HS256_SECRET and RFD_JWT_ISSUER)",
		Long: "Prints an HS256 access token for the doctor with the given external user id, signed with\n" +
			"RFD_JWT_HS256_SECRET and carrying RFD_JWT_ISSUER and RFD_JWT_AUDIENCE, as a development server\n" +
			"configured with the same values accepts. Production servers take user management's RS256/ES256\n" +
			"tokens only: leave RFD_JWT_HS256_SECRET unset there, and this command refuses.",
		Args: cobra.NoArgs,
	}
	doctor := cmd.Flags().String("doctor", "", "the doctor's external user id (the token's sub)")
	cmd.Flags().DurationVar(&ttl, "ttl", 15*time.Minute, "how long the token is valid (at most 24h)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *doctor == "" {
			return usageError{fmt.Errorf("token: --doctor is required")}
		}
		cfg, err := load(cmd)
		if err != nil {
			return err
		}
		tok, err := auth.MintDevToken(auth.DevTokenParams{
			Secret: cfg.JWTHS256Secret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			Doctor: *doctor, TTL: ttl,
		})
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		_, err = fmt.Fprintln(stdout, tok)
		return err
	}
	return cmd
}
