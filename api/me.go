package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/uptrace/bun"

	"github.com/rfd-notify/rfd/internal/core/domain"
	"github.com/rfd-notify/rfd/internal/core/notify"
	"github.com/rfd-notify/rfd/internal/store"
)

// Me is the authenticated doctor's profile (from user management), their
// notification preferences and their push devices.
type Me struct {
	ID             string      `json:"id" doc:"The doctor's id in this service." example:"0b8e4b6e-6f57-5c5a-9d0e-2a0c1f6f3b7a"`
	ExternalUserID string      `json:"external_user_id" doc:"The doctor's user id in user management: the sub of their token." example:"usr-10042"`
	Name           string      `json:"name" example:"Dr. Anan Srisuk"`
	LicenceNumber  string      `json:"licence_number" example:"MD-10042"`
	Specialty      string      `json:"specialty" example:"Cardiology"`
	Clinic         string      `json:"clinic" example:"Sukhumvit Heart Clinic"`
	Email          string      `json:"email" example:"anan.srisuk@clinic.example"`
	Phone          string      `json:"phone" example:"+66812345678"`
	Locale         string      `json:"locale" doc:"Language of the doctor's notifications." example:"en"`
	TimeZone       string      `json:"time_zone" doc:"IANA time zone in which quiet hours are read." example:"Asia/Bangkok"`
	Active         bool        `json:"active" example:"true"`
	Preferences    Preferences `json:"preferences"`
	Devices        []Device    `json:"devices" doc:"Push devices registered with PUT /v1/me/devices/{token}."`
	CreatedAt      time.Time   `json:"created_at" example:"2026-11-25T02:00:00Z"`
	UpdatedAt      time.Time   `json:"updated_at" example:"2026-11-25T02:00:00Z"`
}

// Preferences are the doctor's notification settings as they apply: the
// channels of each category include the mandatory ones (in_app for
// critical results and security alerts).
type Preferences struct {
	Channels      ChannelPreferences `json:"channels"`
	QuietHours    QuietHours         `json:"quiet_hours"`
	Digest        string             `json:"digest" doc:"off, hourly, or daily@HH:MM (the doctor's time zone)." example:"off"`
	FallbackOrder []domain.Channel   `json:"fallback_order" enum:"in_app,email,sms,push,webhook" doc:"Channels tried in turn when a critical notification could not be delivered." example:"[\"sms\",\"push\",\"email\"]"`
	Covering      *Covering          `json:"covering,omitempty" doc:"The doctor covering now, or else the next one to; absent when none is."`
	WeeklySummary bool               `json:"weekly_summary" doc:"Whether the doctor gets the weekly summary email (results received, pending orders)." example:"true"`
}

// ChannelPreferences are the channels of each category.
type ChannelPreferences struct {
	Results         []domain.Channel `json:"results" enum:"in_app,email,sms,push,webhook" example:"[\"in_app\",\"email\"]"`
	CriticalResults []domain.Channel `json:"critical_results" enum:"in_app,email,sms,push,webhook" doc:"Always includes in_app." example:"[\"in_app\",\"sms\",\"push\",\"email\"]"`
	Orders          []domain.Channel `json:"orders" enum:"in_app,email,sms,push,webhook" example:"[\"in_app\"]"`
	Security        []domain.Channel `json:"security" enum:"in_app,email,sms,push,webhook" doc:"Always includes in_app." example:"[\"in_app\",\"email\"]"`
	Announcements   []domain.Channel `json:"announcements" enum:"in_app,email,sms,push,webhook" example:"[\"in_app\"]"`
}

// QuietHours is a daily window in the doctor's time zone in which
// non-urgent notifications wait; both empty means none.
type QuietHours struct {
	Start string `json:"start" pattern:"^(([01][0-9]|2[0-3]):[0-5][0-9])?$" patternDescription:"HH:MM, or empty for none" doc:"Start of the window, HH:MM; empty for none." example:"22:00"`
	End   string `json:"end" pattern:"^(([01][0-9]|2[0-3]):[0-5][0-9])?$" patternDescription:"HH:MM, or empty for none" doc:"End of the window, HH:MM; may be earlier than start (the window crosses midnight)." example:"07:00"`
}

// PreferencesPatch changes some preferences; absent fields keep their value.
type PreferencesPatch struct {
	Channels      *ChannelPreferencesPatch `json:"channels,omitempty" doc:"Categories to change; the others keep their channels."`
	QuietHours    *QuietHours              `json:"quiet_hours,omitempty" doc:"The new window; {\"start\":\"\",\"end\":\"\"} removes it."`
	Digest        *string                  `json:"digest,omitempty" pattern:"^(off|hourly|daily@([01][0-9]|2[0-3]):[0-5][0-9])$" patternDescription:"off, hourly or daily@HH:MM" example:"daily@18:00"`
	FallbackOrder *[]domain.Channel        `json:"fallback_order,omitempty" enum:"in_app,email,sms,push,webhook" maxItems:"5" uniqueItems:"true" example:"[\"push\",\"sms\"]"`
	WeeklySummary *bool                    `json:"weekly_summary,omitempty" doc:"false opts out of the weekly summary email." example:"false"`
	Covering      CoveringChange           `json:"covering,omitzero" doc:"A doctor who covers for this one from starts_at to ends_at, receiving a copy of each notification meanwhile once they have accepted; it replaces the current and future cover. null ends the current cover now and removes future ones."`
}

// ChannelPreferencesPatch sets the channels of some categories. in_app is
// kept for critical results and security alerts whatever is sent.
type ChannelPreferencesPatch struct {
	Results         *[]domain.Channel `json:"results,omitempty" enum:"in_app,email,sms,push,webhook" maxItems:"5" uniqueItems:"true" example:"[\"in_app\",\"email\"]"`
	CriticalResults *[]domain.Channel `json:"critical_results,omitempty" enum:"in_app,email,sms,push,webhook" maxItems:"5" uniqueItems:"true" example:"[\"in_app\",\"sms\"]"`
	Orders          *[]domain.Channel `json:"orders,omitempty" enum:"in_app,email,sms,push,webhook" maxItems:"5" uniqueItems:"true" example:"[\"in_app\"]"`
	Security        *[]domain.Channel `json:"security,omitempty" enum:"in_app,email,sms,push,webhook" maxItems:"5" uniqueItems:"true" example:"[\"in_app\",\"email\"]"`
	Announcements   *[]domain.Channel `json:"announcements,omitempty" enum:"in_app,email,sms,push,webhook" maxItems:"5" uniqueItems:"true" example:"[]"`
}

type meOutput struct {
	Body Me
}

type patchPreferencesInput struct {
	Body PreferencesPatch
}

type preferencesOutput struct {
	Body Preferences
}

func registerMe(doctor *huma.Group, h *service) {
	huma.Register(doctor, huma.Operation{
		OperationID: "getMe",
		Method:      http.MethodGet,
		Path:        "/v1/me",
		Summary:     "Get the authenticated doctor",
		Description: "The doctor's profile as user management last sent it, their notification preferences as they apply, and their push devices.",
		Tags:        []string{"Me"},
	}, h.getMe)
	huma.Register(doctor, huma.Operation{
		OperationID: "getPreferences",
		Method:      http.MethodGet,
		Path:        "/v1/me/preferences",
		Summary:     "Get notification preferences",
		Description: "The doctor's notification preferences as they apply, in the shape PATCH /v1/me/preferences answers: " +
			"the channels of each category (with the mandatory in_app), quiet hours, digest, fallback order, weekly summary and the covering doctor.",
		Tags: []string{"Me"},
	}, h.getPreferences)
	huma.Register(doctor, huma.Operation{
		OperationID: "updatePreferences",
		Method:      http.MethodPatch,
		Path:        "/v1/me/preferences",
		Summary:     "Change notification preferences",
		Description: "Changes the channels of some categories, the quiet hours, the digest, the fallback order or the covering doctor; absent fields keep their value. " +
			"Critical results and security alerts always keep the in_app channel. The covering doctor must be another, active doctor, " +
			"and the cover must end after it starts, in the future, and at most RFD_COVERING_MAX_DAYS (30 by default) after it takes effect. " +
			"A new cover is pending: the covering doctor receives nothing until they accept it (acceptCoveringRequest) or an operator " +
			"approves it (approveCovering). Requests and ends of covers are audited. Answers the preferences as they now apply.",
		Tags:   []string{"Me"},
		Errors: []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge},
	}, h.patchPreferences)
}

func (h *service) getMe(ctx context.Context, _ *struct{}) (*meOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	view, err := h.preferencesOf(ctx, doc.ID)
	if err != nil {
		return nil, h.fail(ctx, "getMe", err)
	}
	devices, err := h.devicesOf(ctx, doc.ID)
	if err != nil {
		return nil, h.fail(ctx, "getMe", err)
	}
	return &meOutput{Body: Me{
		ID: doc.ID, ExternalUserID: doc.ExternalUserID, Name: doc.Name, LicenceNumber: doc.LicenceNumber,
		Specialty: doc.Specialty, Clinic: doc.Clinic, Email: doc.Email, Phone: doc.Phone, Locale: doc.Locale,
		TimeZone: doc.TimeZone, Active: doc.Active, Preferences: view, Devices: devices,
		CreatedAt: doc.CreatedAt.UTC(), UpdatedAt: doc.UpdatedAt.UTC(),
	}}, nil
}

func (h *service) getPreferences(ctx context.Context, _ *struct{}) (*preferencesOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	view, err := h.preferencesOf(ctx, doc.ID)
	if err != nil {
		return nil, h.fail(ctx, "getPreferences", err)
	}
	return &preferencesOutput{Body: view}, nil
}

// preferencesOf is the doctor's preferences as they apply now, with their
// cover: what getMe and getPreferences answer.
func (h *service) preferencesOf(ctx context.Context, doctorID string) (Preferences, error) {
	prefs, err := notify.PreferencesOf(ctx, h.db, doctorID)
	if err != nil {
		return Preferences{}, err
	}
	covering, err := coveringOf(ctx, store.NewQueries(h.db), doctorID, h.now().UTC())
	if err != nil {
		return Preferences{}, err
	}
	view := preferencesView(prefs)
	view.Covering = covering
	return view, nil
}

func preferencesView(p domain.Preferences) Preferences {
	fallback := p.FallbackOrder
	if fallback == nil {
		fallback = []domain.Channel{}
	}
	digest := p.Digest
	if digest == "" {
		digest = "off"
	}
	return Preferences{
		Channels: ChannelPreferences{
			Results:         p.ChannelsFor(domain.CategoryResults),
			CriticalResults: p.ChannelsFor(domain.CategoryCriticalResults),
			Orders:          p.ChannelsFor(domain.CategoryOrders),
			Security:        p.ChannelsFor(domain.CategorySecurity),
			Announcements:   p.ChannelsFor(domain.CategoryAnnouncements),
		},
		QuietHours:    QuietHours{Start: p.QuietHours.Start, End: p.QuietHours.End},
		Digest:        digest,
		FallbackOrder: fallback,
		WeeklySummary: !p.NoWeeklySummary,
	}
}

func (h *service) patchPreferences(ctx context.Context, in *patchPreferencesInput) (*preferencesOutput, error) {
	doc, err := doctorOf(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := h.dbctx(ctx)
	defer cancel()
	now := h.now().UTC().Truncate(time.Microsecond)
	var (
		out      domain.Preferences
		covering *Covering
	)
	err = h.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := store.NewQueries(tx)
		// Serialise concurrent changes of one doctor's preferences.
		if err := q.DoctorLockForUpdate(ctx, doc.ID); err != nil {
			return err
		}
		prefs, err := notify.PreferencesOf(ctx, tx, doc.ID)
		if err != nil {
			return err
		}
		prefs = applyPatch(prefs, in.Body)
		if err := prefs.Validate(); err != nil {
			return validationError(err)
		}
		row := store.NewPreferencesRow(doc.ID, prefs, now)
		if err := q.PreferencesUpsert(ctx, &row); err != nil {
			return err
		}
		if err := h.changeCovering(ctx, tx, doc, in.Body.Covering, now); err != nil {
			return err
		}
		if covering, err = coveringOf(ctx, q, doc.ID, now); err != nil {
			return err
		}
		out = prefs
		return nil
	})
	if err != nil {
		return nil, h.fail(ctx, "updatePreferences", err)
	}
	view := preferencesView(out)
	view.Covering = covering
	return &preferencesOutput{Body: view}, nil
}

// applyPatch applies p to prefs. The mandatory channels of a category are
// kept whatever the patch says.
func applyPatch(prefs domain.Preferences, p PreferencesPatch) domain.Preferences {
	channels := map[domain.Category][]domain.Channel{}
	for c, chs := range prefs.Channels {
		channels[c] = slices.Clone(chs)
	}
	if p.Channels != nil {
		for c, chs := range map[domain.Category]*[]domain.Channel{
			domain.CategoryResults:         p.Channels.Results,
			domain.CategoryCriticalResults: p.Channels.CriticalResults,
			domain.CategoryOrders:          p.Channels.Orders,
			domain.CategorySecurity:        p.Channels.Security,
			domain.CategoryAnnouncements:   p.Channels.Announcements,
		} {
			if chs != nil {
				channels[c] = slices.Clone(*chs)
			}
		}
	}
	for _, c := range domain.Categories {
		for _, m := range domain.Mandatory(c) {
			if !slices.Contains(channels[c], m) {
				channels[c] = append([]domain.Channel{m}, channels[c]...)
			}
		}
		if channels[c] == nil {
			channels[c] = []domain.Channel{}
		}
	}
	prefs.Channels = channels
	if p.QuietHours != nil {
		prefs.QuietHours = domain.QuietHours{Start: p.QuietHours.Start, End: p.QuietHours.End}
	}
	if p.WeeklySummary != nil {
		prefs.NoWeeklySummary = !*p.WeeklySummary
	}
	if p.Digest != nil {
		prefs.Digest = *p.Digest
	}
	if p.FallbackOrder != nil {
		prefs.FallbackOrder = slices.Clone(*p.FallbackOrder)
	}
	if prefs.FallbackOrder == nil {
		prefs.FallbackOrder = []domain.Channel{}
	}
	return prefs
}

// validationError is domain.Preferences.Validate's error as a 422 whose
// location is the field it names ("quiet_hours.start: ..." → body.quiet_hours.start).
func validationError(err error) error {
	msg := err.Error()
	loc := "body"
	if field, rest, ok := strings.Cut(msg, ": "); ok && !strings.Contains(field, " ") {
		loc, msg = "body."+field, rest
	}
	return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Message: msg, Location: loc})
}
