package pod

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// The remote cluster protocol between esim pods. Real Elasticsearch speaks its binary transport
// protocol here; esim needs only what decides `connected`: a TLS handshake with the real
// certificates and trust of both pods, then one request carrying the transport headers that ES
// sends on the remote cluster port, answered with the remote's verdict.

const (
	// HandshakeAction is the action ES authenticates on a new remote cluster connection.
	HandshakeAction = "cluster:internal/remote_cluster/handshake"
	// CredentialsHeader carries "ApiKey <encoded>" on the remote cluster port.
	CredentialsHeader = "_cross_cluster_access_credentials"
	// maxWireMessage bounds one protocol message.
	maxWireMessage = 1 << 20
)

// wireRequest is the client's first message after the TLS handshake.
type wireRequest struct {
	Action      string            `json:"action"`
	Headers     map[string]string `json:"headers,omitempty"`
	ClusterName string            `json:"cluster_name"`
	Version     string            `json:"version"`
}

// wireResponse answers a wireRequest.
type wireResponse struct {
	ClusterName string     `json:"cluster_name,omitempty"`
	Version     string     `json:"version,omitempty"`
	Error       *wireError `json:"error,omitempty"`
}

// wireError is the remote's exception, as it would surface in the local ES log.
type wireError struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

func (e *wireError) Error() string { return e.Type + ": " + e.Reason }

func writeMessage(c net.Conn, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("failed to encode message: %w", err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("failed to write message: %w", err)
	}
	return nil
}

func readMessage(c net.Conn, v any) error {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReaderSize(io.LimitReader(c, maxWireMessage), 4096)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("failed to read message: %w", err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("failed to decode message: %w", err)
	}
	return nil
}
