package esim

import (
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// timeValue is org.elasticsearch.core.TimeValue: a count of a unit.
type timeValue struct {
	n    int64
	unit time.Duration // nanoseconds per unit
}

// seconds is TimeValue.getSeconds() (saturating like TimeUnit.toSeconds).
func (t timeValue) seconds() int64 {
	if t.unit >= time.Second {
		per := int64(t.unit / time.Second)
		if t.n > 0 && t.n > math.MaxInt64/per {
			return math.MaxInt64
		}
		if t.n < 0 && t.n < math.MinInt64/per {
			return math.MinInt64
		}
		return t.n * per
	}
	return t.n / int64(time.Second/t.unit)
}

// duration is the value as a Go duration, saturating.
func (t timeValue) duration() time.Duration {
	if t.n != 0 && (t.n > math.MaxInt64/int64(t.unit) || t.n < math.MinInt64/int64(t.unit)) {
		if t.n > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return time.Duration(t.n) * t.unit
}

var (
	reMinusOne = regexp.MustCompile(`^-0*1$`)
	reZeros    = regexp.MustCompile(`^0+$`)
)

// parseTimeValue is TimeValue.parseTimeValue(sValue, null, settingName) of
// ES 8/9, which throws IllegalArgumentException (not ElasticsearchParseException).
func parseTimeValue(s, setting string) (timeValue, *Error) {
	norm := strings.TrimSpace(strings.ToLower(s))
	units := []struct {
		suffix string
		unit   time.Duration
		exact  bool // "m" is matched case-sensitively on the raw value
	}{
		{"nanos", time.Nanosecond, false}, {"micros", time.Microsecond, false}, {"ms", time.Millisecond, false},
		{"s", time.Second, false}, {"m", time.Minute, true}, {"h", time.Hour, false}, {"d", 24 * time.Hour, false},
	}
	for _, u := range units {
		match := strings.HasSuffix(norm, u.suffix)
		if u.exact {
			match = strings.HasSuffix(s, u.suffix)
		}
		if !match {
			continue
		}
		if len(norm) < len(u.suffix) {
			continue
		}
		num := strings.TrimSpace(norm[:len(norm)-len(u.suffix)])
		v, ok := javaParseLong(num)
		if !ok {
			if _, ferr := strconv.ParseFloat(num, 64); ferr == nil {
				return timeValue{}, iae("failed to parse [%s], fractional time values are not supported", s).withCause(numberFormatErr(num))
			}
			return timeValue{}, iae("failed to parse [%s]", s).withCause(numberFormatErr(num))
		}
		if v < -1 {
			return timeValue{}, iae("failed to parse setting [%s] with value [%s] as a time value: negative durations are not supported", setting, s)
		}
		return timeValue{v, u.unit}, nil
	}
	if reMinusOne.MatchString(norm) {
		return timeValue{-1, time.Millisecond}, nil
	}
	if reZeros.MatchString(norm) {
		return timeValue{0, time.Millisecond}, nil
	}
	return timeValue{}, iae("failed to parse setting [%s] with value [%s] as a time value: unit is missing or unrecognized", setting, s)
}

// javaParseInt is Integer.parseInt: optional sign, decimal digits, 32-bit.
func javaParseInt(s string) (int64, bool) {
	if s == "" || s == "+" || s == "-" {
		return 0, false
	}
	t := s
	if t[0] == '+' {
		t = t[1:]
	}
	v, err := strconv.ParseInt(t, 10, 32)
	if err != nil || strings.HasPrefix(t, "+") || strings.HasPrefix(t, "-+") {
		return 0, false
	}
	return v, true
}

// javaParseLong is Long.parseLong.
func javaParseLong(s string) (int64, bool) {
	if s == "" || s == "+" || s == "-" {
		return 0, false
	}
	t := s
	if t[0] == '+' {
		t = t[1:]
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || strings.HasPrefix(t, "+") || strings.HasPrefix(t, "-+") {
		return 0, false
	}
	return v, true
}

// parseESBool is org.elasticsearch.core.Booleans.parseBoolean(String).
func parseESBool(s string) (bool, *Error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, iae("Failed to parse value [%s] as only [true] or [false] are allowed.", s)
}

// parseByteSize is ByteSizeValue.parseBytesSizeValue; unit-less -1 and 0 are allowed.
func parseByteSize(s, setting string) *Error {
	low := strings.TrimSpace(strings.ToLower(s))
	for _, suf := range []string{"kb", "mb", "gb", "tb", "pb", "k", "m", "g", "t", "p", "b"} {
		if strings.HasSuffix(low, suf) {
			num := strings.TrimSpace(low[:len(low)-len(suf)])
			if _, ok := javaParseLong(num); ok {
				return nil
			}
			if _, err := strconv.ParseFloat(num, 64); err == nil {
				return nil // fractional byte sizes are accepted (deprecated) in 8.x
			}
			return iae("failed to parse setting [%s] with value [%s] as a size in bytes", setting, s).withCause(numberFormatErr(num))
		}
	}
	if low == "-1" || low == "0" {
		return nil
	}
	return iae("failed to parse setting [%s] with value [%s] as a size in bytes: unit is missing or unrecognized", setting, s).
		withCause(parseErr("failed to parse setting [%s] with value [%s] as a size in bytes: unit is missing or unrecognized", setting, s))
}

// parseDateMillis parses a date for the API-key query fields, whose mapping
// format is epoch_millis: a number of milliseconds or date math starting with
// "now" (now-1d, now+2h/d, ...). The bool reports success.
func parseDateMillis(s string, now time.Time) (int64, bool) {
	if v, ok := javaParseLong(s); ok {
		return v, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return int64(f), true
	}
	if !strings.HasPrefix(s, "now") {
		return 0, false
	}
	t := now.UTC()
	rest := s[3:]
	for len(rest) > 0 {
		op := rest[0]
		rest = rest[1:]
		switch op {
		case '+', '-':
			i := 0
			for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
				i++
			}
			n := 1
			if i > 0 {
				v, err := strconv.Atoi(rest[:i])
				if err != nil {
					return 0, false
				}
				n = v
			}
			if i >= len(rest) {
				return 0, false
			}
			if op == '-' {
				n = -n
			}
			var ok bool
			if t, ok = addUnit(t, rest[i], n); !ok {
				return 0, false
			}
			rest = rest[i+1:]
		case '/':
			if len(rest) == 0 {
				return 0, false
			}
			var ok bool
			if t, ok = roundDown(t, rest[0]); !ok {
				return 0, false
			}
			rest = rest[1:]
		default:
			return 0, false
		}
	}
	return t.UnixMilli(), true
}

func addUnit(t time.Time, unit byte, n int) (time.Time, bool) {
	switch unit {
	case 'y':
		return t.AddDate(n, 0, 0), true
	case 'M':
		return t.AddDate(0, n, 0), true
	case 'w':
		return t.AddDate(0, 0, 7*n), true
	case 'd':
		return t.AddDate(0, 0, n), true
	case 'h', 'H':
		return t.Add(time.Duration(n) * time.Hour), true
	case 'm':
		return t.Add(time.Duration(n) * time.Minute), true
	case 's':
		return t.Add(time.Duration(n) * time.Second), true
	}
	return t, false
}

func roundDown(t time.Time, unit byte) (time.Time, bool) {
	y, mo, d := t.Date()
	switch unit {
	case 'y':
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), true
	case 'M':
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC), true
	case 'w':
		wd := (int(t.Weekday()) + 6) % 7 // ISO week starts Monday
		return time.Date(y, mo, d-wd, 0, 0, 0, 0, time.UTC), true
	case 'd':
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC), true
	case 'h', 'H':
		return t.Truncate(time.Hour), true
	case 'm':
		return t.Truncate(time.Minute), true
	case 's':
		return t.Truncate(time.Second), true
	}
	return t, false
}

// instantMaxSecond is java.time.Instant.MAX.getEpochSecond().
const instantMaxSecond = 31556889864403199

// expirationMillis is ApiKeyService.getApiKeyExpiration: now.plusSeconds(
// expiration.getSeconds()) in epoch millis. Sub-second durations therefore
// round down to whole seconds. Overflow reproduces the Java exceptions
// (DateTimeException / ArithmeticException, both 500) [mem].
func expirationMillis(now time.Time, tv timeValue) (int64, *Error) {
	secs := new(big.Int).Add(big.NewInt(now.Unix()), big.NewInt(tv.seconds()))
	if secs.Cmp(big.NewInt(instantMaxSecond)) > 0 || secs.Cmp(big.NewInt(-instantMaxSecond-1)) < 0 {
		return 0, newErr(500, "date_time_exception", "Instant exceeds minimum or maximum instant")
	}
	ms := new(big.Int).Mul(secs, big.NewInt(1000))
	ms.Add(ms, big.NewInt(int64(now.Nanosecond()/1e6)))
	if !ms.IsInt64() {
		return 0, newErr(500, "arithmetic_exception", "long overflow")
	}
	return ms.Int64(), nil
}
