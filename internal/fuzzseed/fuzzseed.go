// Package fuzzseed writes seed corpus files of fuzz targets that take one []byte, in the format
// `go test` reads from testdata/fuzz/<FuzzName>, for the tests that keep committed seeds current.
package fuzzseed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Write writes data as seed name in dir, creating dir if needed.
func Write(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create seed corpus %s: %w", dir, err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		return fmt.Errorf("failed to write seed %s: %w", name, err)
	}
	return nil
}
