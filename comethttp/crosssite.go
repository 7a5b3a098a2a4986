package comethttp

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/simple-comet/caddy-comet/comethttp/wire"
	"github.com/simple-comet/caddy-comet/hub"
)

// sameSiteOps are the operations a route serves only to requests that a
// browser does not mark as sent from another site, unless its
// allow_cross_site lists them. A page elsewhere can make a visitor's
// browser POST a form or load a <script> with whatever cookies, basic_auth
// credentials and client address the visitor has: so a route that Caddy
// protects by remote_ip or basic_auth would publish for it, and its
// status.jsonp, which a <script> can read across sites, would hand it the
// client ids that open session channels. Subscribe is served to every site
// (reading from other origins is what the client scripts are for), and the
// health probe reveals nothing.
var sameSiteOps = []string{OpPublish, OpManage, OpStatus}

// errCrossSite is the refusal of a request from another site.
var errCrossSite = &hub.Error{Code: hub.CodeBadRequest, Message: "Cross-site request refused"}

// crossSite reports whether a browser sent r on behalf of a page of
// another site, and says how it tells. It decides as net/http's
// CrossOriginProtection does, for every method (a status GET included):
//
//   - Sec-Fetch-Site, which browsers send (Chromium since 2019, Firefox
//     since 2021, Safari since 2023) and no page can set, decides when
//     present: same-origin and none (the user typed the URL or followed a
//     bookmark) are this site; cross-site, same-site (a subdomain, another
//     port of the host) and any value this code does not know are not.
//   - Without it (older browsers), an Origin header, when there is one,
//     must be http or https and name the host and port the request came
//     to, its Host header. Origin null (sandboxed frames, file: pages,
//     redirects across sites) is another site. The scheme is not
//     compared: behind a proxy that ends TLS the request reaches Caddy
//     over HTTP while the page's origin is https, and X-Forwarded-Proto
//     would be one more header to trust. What that lets through is a page
//     on plain HTTP at the site's own host and port, in a browser without
//     Sec-Fetch-Site; HSTS and Caddy's redirect to HTTPS keep pages off
//     that origin.
//   - With neither header the request is served: it is not a browser's on
//     behalf of a page (curl, a back end), or one from a browser too old
//     to say.
func crossSite(r *http.Request) (refused bool, why string) {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "":
	case "same-origin", "none":
		return false, ""
	case "cross-site", "same-site":
		return true, "Sec-Fetch-Site: " + site
	default:
		return true, "unknown Sec-Fetch-Site"
	}
	origin, ok := r.Header["Origin"]
	if !ok {
		return false, ""
	}
	if len(origin) != 1 {
		return true, "more than one Origin"
	}
	if origin[0] == "null" {
		return true, "Origin: null"
	}
	u, err := url.Parse(origin[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, r.Host) {
		return true, "Origin of another site"
	}
	return false, ""
}

// refuseCrossSite answers a request for op that a browser sent from another
// site with 403, unless the route takes op from other sites, and reports
// whether it did.
func (h *Handler) refuseCrossSite(w http.ResponseWriter, r *http.Request, opts wire.Options, op string) bool {
	if !slices.Contains(sameSiteOps, op) || h.crossSiteOK[op] {
		return false
	}
	refused, why := crossSite(r)
	if !refused {
		return false
	}
	h.logger.Debug("cross-site request refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("operation", op), zap.String("reason", why),
		zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")), zap.String("origin", r.Header.Get("Origin")))
	h.replyErrorStatus(w, r, opts, http.StatusForbidden,
		errCrossSite.With(fmt.Sprintf("%s from another site (%s); see allow_cross_site", op, why)))
	return true
}

// CheckAllowCrossSite refuses an allow_cross_site that names an operation
// that is always served across sites, or one not in allowed (unless
// allowed is nil); New checks Options.AllowCrossSite with it, and a
// configuration parser may call it to name the line.
func CheckAllowCrossSite(ops, allowed []string) error {
	for _, op := range ops {
		switch {
		case op == OpSubscribe:
			return fmt.Errorf("allow_cross_site: subscribe is always served to other sites; list only %s", strings.Join(sameSiteOps, ", "))
		case !slices.Contains(sameSiteOps, op):
			return fmt.Errorf("allow_cross_site: unknown operation %q (want %s)", op, strings.Join(sameSiteOps, ", "))
		case allowed != nil && !slices.Contains(allowed, op):
			return fmt.Errorf("allow_cross_site: %s is not allowed on this route (allow %s)", op, strings.Join(allowed, " "))
		}
	}
	return nil
}
