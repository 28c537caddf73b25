// Package fuzzseed writes seed corpus files of fuzz targets that take one []byte, in the format
// `go test` reads from testdata/fuzz/<FuzzName>, for the tests that keep committed seeds current.
package fuzzseed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"
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

// WriteAll writes each of seeds (name to data) in dir.
func WriteAll(dir string, seeds map[string][]byte) error {
	for name, data := range seeds {
		if err := Write(dir, name, data); err != nil {
			return err
		}
	}
	return nil
}

// WriteProtos writes each of seeds (name to message), in its wire encoding, in dir.
func WriteProtos[M proto.Message](dir string, seeds map[string]M) error {
	for name, m := range seeds {
		data, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("failed to encode seed %s: %w", name, err)
		}
		if err := Write(dir, name, data); err != nil {
			return err
		}
	}
	return nil
}
