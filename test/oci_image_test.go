package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"runtime"
	"strings"
)

// ociImage is an image of one layer, written as an OCI image layout
// archive: what `ctr images import` takes, since no registry is reachable.
type ociImage struct {
	name       string            // e.g. localhost/dnet-hello:test
	files      map[string]string // path in the image -> file on this machine
	entrypoint []string
	cmd        []string
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func (img ociImage) writeArchive(path string) error {
	blobs := map[string][]byte{}
	blob := func(mediaType string, data []byte) ociDescriptor {
		sum := sha256.Sum256(data)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = data
		return ociDescriptor{MediaType: mediaType, Digest: d, Size: len(data)}
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for dst, src := range img.files {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(dst, "/"), Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerDesc := blob("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": img.entrypoint, "Cmd": img.cmd},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	})
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        blob("application/vnd.oci.image.config.v1+json", config),
		"layers":        []ociDescriptor{layerDesc},
	})
	m := blob("application/vnd.oci.image.manifest.v1+json", manifest)
	_, tag, _ := strings.Cut(img.name[strings.LastIndex(img.name, "/")+1:], ":")
	m.Annotations = map[string]string{"io.containerd.image.name": img.name, "org.opencontainers.image.ref.name": tag}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []ociDescriptor{m}})

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	out := tar.NewWriter(f)
	put := func(name string, data []byte) error {
		if err := out.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := out.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	for d, data := range blobs {
		if err := put("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), data); err != nil {
			return err
		}
	}
	return out.Close()
}
