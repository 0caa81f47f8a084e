package gateway

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// format is the response type of a Trustless Gateway request.
type format int

const (
	formatRaw format = iota + 1
	formatCAR
)

// negotiate picks the response type of a /ipfs/ request: the format query
// parameter wins over Accept (Trustless Gateway spec, "format"); CAR
// parameters come from Accept and are overridden by car-version, car-order
// and car-dups. Only version=1, order=dfs (or unk) and dups=n are served;
// anything else is ErrNotAcceptable. A request naming no trustless type is
// ErrBadRequest: this gateway never deserializes at /ipfs/.
func negotiate(r *http.Request) (format, error) {
	q := r.URL.Query()
	var f format
	carOK := true
	switch q.Get("format") {
	case "raw":
		f = formatRaw
	case "car":
		f = formatCAR
	case "":
		var err error
		if f, carOK, err = fromAccept(r.Header.Values("Accept")); err != nil {
			return 0, err
		}
	default:
		return 0, badRequest("format %q: this trustless gateway serves raw and car", q.Get("format"))
	}
	if f != formatCAR {
		return f, nil
	}
	if !carOK {
		return 0, notAcceptable("Accept asks for a CAR variant other than version=1; order=dfs; dups=n")
	}
	if v := q.Get("car-version"); v != "" && v != "1" {
		return 0, notAcceptable("car-version %q: only 1 is served", v)
	}
	if v := q.Get("car-order"); v != "" && v != "dfs" && v != "unk" {
		return 0, notAcceptable("car-order %q: only dfs is served", v)
	}
	if v := q.Get("car-dups"); v != "" && v != "n" {
		return 0, notAcceptable("car-dups %q: only n is served", v)
	}
	return f, nil
}

func notAcceptable(format string, args ...any) error {
	return wrapf(ErrNotAcceptable, format, args...)
}

// fromAccept returns the most preferred trustless type in Accept headers
// (RFC 9110 §12.5.1 q-values; ties go to the first listed). carOK is false
// when the only CAR ranges listed ask for parameters this gateway does not
// serve.
func fromAccept(values []string) (format, bool, error) {
	best, bestQ := format(0), 0.0
	sawCAR := false
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			qv := 1.0
			if s, ok := params["q"]; ok {
				if qv, err = strconv.ParseFloat(s, 64); err != nil || qv < 0 || qv > 1 {
					continue
				}
			}
			var f format
			switch mt {
			case MediaRaw:
				f = formatRaw
			case MediaCAR:
				sawCAR = true
				if !carParamsOK(params) {
					continue
				}
				f = formatCAR
			default:
				continue
			}
			if qv > bestQ {
				best, bestQ = f, qv
			}
		}
	}
	if best == 0 {
		if sawCAR {
			return formatCAR, false, nil
		}
		return 0, false, badRequest("want ?format=raw|car or Accept: %s or %s", MediaRaw, MediaCAR)
	}
	return best, true, nil
}

func carParamsOK(p map[string]string) bool {
	if v, ok := p["version"]; ok && v != "1" {
		return false
	}
	if v, ok := p["order"]; ok && v != "dfs" && v != "unk" {
		return false
	}
	if v, ok := p["dups"]; ok && v != "n" {
		return false
	}
	return true
}
