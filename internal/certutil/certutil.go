// Package certutil holds what the agent's certificate authorities share: serial numbers and the
// backdating of NotBefore.
package certutil

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"time"
)

// Backdate is how far before now certificates start, to absorb clock skew between clusters and
// agents: a tenth of the validity, at most 5 minutes.
func Backdate(validity time.Duration) time.Duration {
	return min(5*time.Minute, validity/10)
}

// SerialNumber returns a random 127-bit certificate serial number.
func SerialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("failed to generate serial number: %w", err)
	}
	return n, nil
}
