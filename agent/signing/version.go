package signing

import (
	"fmt"
	"strconv"
	"strings"
)

// Supported reports whether Elasticsearch version v (MAJOR.MINOR.PATCH[-suffix]) has strong
// identity verification (9.3 or later).
func Supported(v string) (bool, error) {
	core, _, _ := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false, fmt.Errorf("failed to parse version %q", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false, fmt.Errorf("failed to parse version %q", v)
	}
	return major > 9 || major == 9 && minor >= 3, nil
}
