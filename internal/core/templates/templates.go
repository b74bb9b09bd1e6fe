// Package templates renders the human-readable text of RFD Notify
// notifications: one set of texts per notification type × channel × locale
// (English "en" and Thai "th"). Plain-text parts use text/template, the email
// HTML part uses html/template; all template files are embedded from tmpl/.
//
// Privacy is the point of this package (DESIGN.md, "Privacy"): SMS, push and
// email leave the authenticated portal, so they must carry no patient detail.
// That is enforced structurally, not by reviewing template text:
//
//   - Only in_app templates are executed with the PHI fields of Data. Every
//     other channel is executed with publicView, a type that has no PHI
//     fields at all, so a template that mentions {{.PatientName}} cannot
//     render a patient name — it fails to execute.
//   - At load time every template tree is walked and every field reference is
//     checked against the fields of the view that channel receives. A PHI
//     reference hidden in a branch that tests never take still fails, at
//     package initialisation, instead of at 3 a.m. in production.
//
// The tests additionally render every public template with a synthetic
// patient and fail on any trace of it.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"reflect"
	"slices"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
)

// Notification types. The values are the wire names used by the rest of the
// service (events, database rows), so they must not change.
const (
	TypeCheckupScheduled = "checkup_scheduled"
	TypeCheckupCompleted = "checkup_completed"
	TypeResultAvailable  = "result_available"
	TypeResultCorrected  = "result_corrected"
	TypeResultRetracted  = "result_retracted"
	TypeCriticalResult   = "critical_result"
	TypeOrderStatus      = "order_status"
	TypeWelcome          = "welcome"
	TypeNewDeviceLogin   = "new_device_login"
	TypeFailedLoginAlert = "failed_login_alert"
	TypeAnnouncement     = "announcement"
	TypeDigest           = "digest"
	TypeWeeklySummary    = "weekly_summary"
)

// Channels. Same values as domain.Channel; this package stays a leaf (no
// dependency on domain) so anything may import it.
const (
	ChannelInApp   = "in_app"
	ChannelEmail   = "email"
	ChannelSMS     = "sms"
	ChannelPush    = "push"
	ChannelWebhook = "webhook"
)

// Locales. DefaultLocale is what an unknown or empty locale falls back to.
const (
	LocaleEN      = "en"
	LocaleTH      = "th"
	DefaultLocale = LocaleEN
)

var (
	// ErrUnknownType: the notification type is not one of Types().
	ErrUnknownType = errors.New("templates: unknown notification type")
	// ErrUnknownChannel: the channel is not one of Channels().
	ErrUnknownChannel = errors.New("templates: unknown channel")
	// ErrNoTemplate is returned for the webhook channel: webhook payloads are
	// structured JSON built by the webhook sender, not text from a template.
	// Callers should not render webhooks here; an error (rather than an empty
	// Rendered) makes that mistake loud instead of sending empty payloads.
	ErrNoTemplate = errors.New("templates: channel has no text template (webhook payloads are structured JSON)")
)

var (
	types = []string{
		TypeCheckupScheduled, TypeCheckupCompleted,
		TypeResultAvailable, TypeResultCorrected, TypeResultRetracted, TypeCriticalResult,
		TypeOrderStatus,
		TypeWelcome, TypeNewDeviceLogin, TypeFailedLoginAlert,
		TypeAnnouncement, TypeDigest, TypeWeeklySummary,
	}
	locales  = []string{LocaleEN, LocaleTH}
	channels = []string{ChannelInApp, ChannelEmail, ChannelSMS, ChannelPush, ChannelWebhook}
)

// Types lists every notification type.
func Types() []string { return slices.Clone(types) }

// Locales lists every supported locale; the first is the default.
func Locales() []string { return slices.Clone(locales) }

// Channels lists every channel, including webhook (which Render refuses with
// ErrNoTemplate).
func Channels() []string { return slices.Clone(channels) }

// Data is everything a notification text may use. The first group is safe
// anywhere; the PHI group reaches only in_app templates (see package doc).
type Data struct {
	// Non-PHI, safe on every channel.
	DoctorName        string // the recipient doctor's display name
	PortalURL         string // link to the notification in the portal (opaque id, no PHI)
	NotificationID    string
	OrderStatus       string // order_status: placed|scheduled|sample_collected|in_progress|completed|cancelled
	DeviceHint        string // security: coarse, e.g. "Chrome on macOS" (never an IP)
	Count             int    // digest: number of notifications; weekly summary: results received
	PendingCount      int    // weekly summary: orders still pending
	AnnouncementTitle string // operator-authored, not PHI
	AnnouncementBody  string // operator-authored, not PHI

	// PHI: only in_app Title/Body, shown behind authentication, may use these.
	PatientName      string
	PatientRef       string
	TestName         string
	ResultValue      string
	OrderDescription string
	CheckupID        string
	OrderID          string
}

// Rendered holds the parts of a rendered notification. Which parts are set
// depends on the channel: email → Subject, Text, HTML; sms → Text;
// push → Title, Body; in_app → Title, Body.
//
// in_app Title/Body are plain text (not HTML-escaped): the portal must escape
// them when it displays them.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
	Title   string
	Body    string
}

// publicView is what SMS, push and email templates receive. It deliberately
// has no PHI fields: do not add any. TestPublicViewHasNoPHI guards this.
type publicView struct {
	DoctorName        string
	PortalURL         string
	NotificationID    string
	OrderStatus       string
	OrderStatusText   string // OrderStatus as a localized word
	DeviceHint        string
	Count             int
	PendingCount      int
	AnnouncementTitle string
	AnnouncementBody  string
}

// inAppView is what in_app templates receive: everything.
type inAppView struct {
	publicView
	PatientName      string
	PatientRef       string
	TestName         string
	ResultValue      string
	OrderDescription string
	CheckupID        string
	OrderID          string
}

// newPublicView copies only the non-PHI fields. Listing them one by one
// (rather than copying Data and blanking) means a PHI field added to Data
// later is left out by default.
func newPublicView(d Data, locale string) publicView {
	return publicView{
		DoctorName:        d.DoctorName,
		PortalURL:         d.PortalURL,
		NotificationID:    d.NotificationID,
		OrderStatus:       d.OrderStatus,
		OrderStatusText:   orderStatusText(d.OrderStatus, locale),
		DeviceHint:        d.DeviceHint,
		Count:             d.Count,
		PendingCount:      d.PendingCount,
		AnnouncementTitle: d.AnnouncementTitle,
		AnnouncementBody:  d.AnnouncementBody,
	}
}

func newInAppView(d Data, locale string) inAppView {
	return inAppView{
		publicView:       newPublicView(d, locale),
		PatientName:      d.PatientName,
		PatientRef:       d.PatientRef,
		TestName:         d.TestName,
		ResultValue:      d.ResultValue,
		OrderDescription: d.OrderDescription,
		CheckupID:        d.CheckupID,
		OrderID:          d.OrderID,
	}
}

// orderStatusWords localizes order statuses. An unknown status renders a
// generic "updated" rather than the raw value, so an unexpected upstream
// string never ends up in a doctor's SMS.
var orderStatusWords = map[string]map[string]string{
	LocaleEN: {
		"placed":           "placed",
		"scheduled":        "scheduled",
		"sample_collected": "sample collected",
		"in_progress":      "in progress",
		"completed":        "completed",
		"cancelled":        "cancelled",
		"":                 "updated",
	},
	LocaleTH: {
		"placed":           "สั่งตรวจแล้ว",
		"scheduled":        "นัดหมายแล้ว",
		"sample_collected": "เก็บสิ่งส่งตรวจแล้ว",
		"in_progress":      "กำลังดำเนินการ",
		"completed":        "เสร็จสิ้น",
		"cancelled":        "ยกเลิก",
		"":                 "อัปเดต",
	},
}

func orderStatusText(status, locale string) string {
	words := orderStatusWords[locale]
	if w, ok := words[strings.ToLower(strings.TrimSpace(status))]; ok {
		return w
	}
	return words[""]
}

// NormalizeLocale maps a requested locale ("th", "th-TH", "TH_th", "fr", "")
// to a supported one, falling back to DefaultLocale.
func NormalizeLocale(locale string) string {
	lang := strings.ToLower(strings.TrimSpace(locale))
	if i := strings.IndexAny(lang, "-_"); i >= 0 {
		lang = lang[:i]
	}
	if slices.Contains(locales, lang) {
		return lang
	}
	return DefaultLocale
}

// channelParts are the template parts each channel needs, in the order they
// are rendered. Template files define them as {{define "<type>.<part>"}}.
// The email "html" part lives in email.html; all others in <channel>.tmpl.
var channelParts = map[string][]string{
	ChannelInApp: {"title", "body"},
	ChannelEmail: {"subject", "text", "html"},
	ChannelSMS:   {"text"},
	ChannelPush:  {"title", "body"},
}

//go:embed tmpl
var files embed.FS

// localeSet holds the parsed templates of one locale.
type localeSet struct {
	text map[string]*texttemplate.Template // by channel: in_app, email, sms, push
	html *htmltemplate.Template            // email HTML
}

// sets is parsed once at start-up. The files are embedded, so a broken
// template is a programming error: failing at init (and so in this package's
// tests) beats failing on the first notification.
var sets = mustLoad()

func mustLoad() map[string]*localeSet {
	s, err := load()
	if err != nil {
		panic(err)
	}
	return s
}

func load() (map[string]*localeSet, error) {
	publicFields := fieldNames(reflect.TypeFor[publicView]())
	inAppFields := fieldNames(reflect.TypeFor[inAppView]())

	out := make(map[string]*localeSet, len(locales))
	for _, loc := range locales {
		ls := &localeSet{text: make(map[string]*texttemplate.Template)}
		for _, ch := range []string{ChannelInApp, ChannelEmail, ChannelSMS, ChannelPush} {
			path := "tmpl/" + loc + "/" + ch + ".tmpl"
			t, err := texttemplate.ParseFS(files, path)
			if err != nil {
				return nil, fmt.Errorf("templates: parse %s: %w", path, err)
			}
			allowed := publicFields
			if ch == ChannelInApp {
				allowed = inAppFields
			}
			for _, def := range t.Templates() {
				if def.Tree == nil {
					continue
				}
				if err := checkFields(def.Tree.Root, allowed); err != nil {
					return nil, fmt.Errorf("templates: %s {{define %q}}: %w", path, def.Name(), err)
				}
			}
			ls.text[ch] = t
		}

		path := "tmpl/" + loc + "/email.html"
		h, err := htmltemplate.ParseFS(files, path)
		if err != nil {
			return nil, fmt.Errorf("templates: parse %s: %w", path, err)
		}
		for _, def := range h.Templates() {
			if def.Tree == nil {
				continue
			}
			if err := checkFields(def.Tree.Root, publicFields); err != nil {
				return nil, fmt.Errorf("templates: %s {{define %q}}: %w", path, def.Name(), err)
			}
		}
		ls.html = h

		// Completeness: every type has every part of every channel in every
		// locale, so Render never discovers a missing translation at run time.
		for _, typ := range types {
			for ch, parts := range channelParts {
				for _, part := range parts {
					name := typ + "." + part
					var found bool
					if ch == ChannelEmail && part == "html" {
						found = ls.html.Lookup(name) != nil
					} else {
						found = ls.text[ch].Lookup(name) != nil
					}
					if !found {
						return nil, fmt.Errorf("templates: locale %s channel %s: missing {{define %q}}", loc, ch, name)
					}
				}
			}
		}
		out[loc] = ls
	}
	return out, nil
}

// fieldNames returns the field names a template may reference on a value of
// type t, including fields promoted from embedded structs.
func fieldNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool)
	for _, f := range reflect.VisibleFields(t) {
		if !f.Anonymous && f.IsExported() {
			names[f.Name] = true
		}
	}
	return names
}

// checkFields walks a parsed template and rejects any field reference
// (.X, $.X, .X.Y) whose name is not in allowed. It is stricter than needed
// for nested values, which is fine: views hold only strings and ints.
func checkFields(node parse.Node, allowed map[string]bool) error {
	switch n := node.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkFields(c, allowed); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkFields(n.Pipe, allowed)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := checkFields(c, allowed); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if err := checkFields(a, allowed); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return checkBranch(&n.BranchNode, allowed)
	case *parse.RangeNode:
		return checkBranch(&n.BranchNode, allowed)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode, allowed)
	case *parse.TemplateNode:
		return checkFields(n.Pipe, allowed)
	case *parse.FieldNode:
		return checkIdents(n.Ident, allowed)
	case *parse.VariableNode:
		// $x.Field: Ident[0] is the variable, the rest are fields.
		return checkIdents(n.Ident[1:], allowed)
	case *parse.ChainNode:
		if err := checkFields(n.Node, allowed); err != nil {
			return err
		}
		return checkIdents(n.Field, allowed)
	}
	return nil
}

func checkBranch(b *parse.BranchNode, allowed map[string]bool) error {
	if err := checkFields(b.Pipe, allowed); err != nil {
		return err
	}
	if err := checkFields(b.List, allowed); err != nil {
		return err
	}
	return checkFields(b.ElseList, allowed)
}

func checkIdents(idents []string, allowed map[string]bool) error {
	for _, id := range idents {
		if !allowed[id] {
			return fmt.Errorf("field .%s is not available on this channel", id)
		}
	}
	return nil
}

// Render renders one notification for one channel in one locale. An unknown
// or empty locale falls back to English; an unknown type or channel is an
// error (ErrUnknownType, ErrUnknownChannel); webhook returns ErrNoTemplate.
func Render(notificationType, channel, locale string, d Data) (Rendered, error) {
	if !slices.Contains(types, notificationType) {
		return Rendered{}, fmt.Errorf("%w: %q", ErrUnknownType, notificationType)
	}
	if channel == ChannelWebhook {
		return Rendered{}, ErrNoTemplate
	}
	if _, ok := channelParts[channel]; !ok {
		return Rendered{}, fmt.Errorf("%w: %q", ErrUnknownChannel, channel)
	}
	loc := NormalizeLocale(locale)
	ls := sets[loc]

	// The one place that decides who sees PHI: in_app, and nothing else.
	var view any
	if channel == ChannelInApp {
		view = newInAppView(d, loc)
	} else {
		view = newPublicView(d, loc)
	}

	var r Rendered
	var err error
	text := ls.text[channel]
	switch channel {
	case ChannelInApp, ChannelPush:
		if r.Title, err = execText(text, notificationType+".title", view); err != nil {
			break
		}
		r.Title = oneLine(r.Title)
		if r.Body, err = execText(text, notificationType+".body", view); err != nil {
			break
		}
		if channel == ChannelPush {
			r.Body = oneLine(r.Body)
		}
	case ChannelSMS:
		if r.Text, err = execText(text, notificationType+".text", view); err != nil {
			break
		}
		r.Text = oneLine(r.Text)
	case ChannelEmail:
		if r.Subject, err = execText(text, notificationType+".subject", view); err != nil {
			break
		}
		// A subject is a mail header: one line, so no CR/LF from operator
		// text (announcement titles) can inject headers.
		r.Subject = oneLine(r.Subject)
		if r.Text, err = execText(text, notificationType+".text", view); err != nil {
			break
		}
		var buf bytes.Buffer
		if err = ls.html.ExecuteTemplate(&buf, notificationType+".html", view); err != nil {
			break
		}
		r.HTML = strings.TrimSpace(buf.String())
	}
	if err != nil {
		return Rendered{}, fmt.Errorf("templates: render %s/%s/%s: %w", notificationType, channel, loc, err)
	}
	if err := checkRequired(channel, r); err != nil {
		return Rendered{}, fmt.Errorf("templates: render %s/%s/%s: %w", notificationType, channel, loc, err)
	}
	return r, nil
}

func execText(t *texttemplate.Template, name string, view any) (string, error) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, view); err != nil {
		return "", err
	}
	return strings.TrimSpace(buf.String()), nil
}

// oneLine collapses all whitespace runs (including newlines) to one space.
// It lets template files wrap long lines and keeps single-line parts single.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// checkRequired refuses to return a notification with an empty required
// part; sending an empty SMS or subject is worse than an error.
func checkRequired(channel string, r Rendered) error {
	parts := map[string]string{
		"subject": r.Subject, "text": r.Text, "html": r.HTML,
		"title": r.Title, "body": r.Body,
	}
	for _, p := range channelParts[channel] {
		if parts[p] == "" {
			return fmt.Errorf("empty %s", p)
		}
	}
	return nil
}
