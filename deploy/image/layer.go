package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// passwd and group hold only root (so tools that look up uid 0 do not fail) and nonroot. The
// nonroot shell is /sbin/nologin, which does not exist: the image has no shell at all.
var (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:" + strconv.Itoa(UID) + ":" + strconv.Itoa(GID) + ":nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nonroot:x:" + strconv.Itoa(GID) + ":\n"
)

// entry is one tar entry; Data is nil for folders.
type entry struct {
	name     string
	mode     int64
	uid, gid int
	data     []byte
	dir      bool
}

// baseLayer holds the user database, the nonroot home and a world-writable /tmp.
func baseLayer(mtime time.Time) (v1.Layer, error) {
	return layer(mtime, []entry{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "home", mode: 0o755, dir: true},
		{name: "home/nonroot", mode: 0o700, uid: UID, gid: GID, dir: true},
		{name: "tmp", mode: 0o1777, dir: true},
	})
}

// binaryLayer holds the binaries and their parent folders.
func binaryLayer(files []File, mtime time.Time) (v1.Layer, error) {
	entries := []entry{}
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			entries = append(entries, entry{name: d[1:], mode: 0o755, dir: true})
		}
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", f.Source, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		entries = append(entries, entry{name: f.Path[1:], mode: mode, data: data})
	}
	return layer(mtime, entries)
}

// layer writes entries, sorted by name for a reproducible digest, into a tar held in memory
// that becomes a gzip-compressed layer.
func layer(mtime time.Time, entries []entry) (v1.Layer, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: mtime.Truncate(time.Second),
		}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("failed to write tar header %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("failed to write %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("failed to close tar: %w", err)
	}
	data := buf.Bytes()
	// Default compression makes the binaries layer about a sixth smaller than the library's
	// BestSpeed; caching keeps the digest pass and the tarball write from compressing twice.
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("failed to make layer: %w", err)
	}
	return l, nil
}
