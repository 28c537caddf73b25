package esim

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
)

// File realm as ECK configures it (xpack.security.authc.realms.file.file1).
const (
	fileRealmName = "file1"
	fileRealmType = "file"
	apiKeyRealm   = "_es_api_key"
	// CrossClusterAccessHeader is the transport header that carries the
	// "ApiKey <encoded>" credential on the remote cluster port.
	CrossClusterAccessHeader = "_cross_cluster_access_credentials"
)

// wwwAuthenticate are the challenges ES sends on every 401. Older releases
// wrote `Basic realm="security" charset="UTF-8"` without the comma; the
// version of the change is not verified, esim always writes the comma.
var wwwAuthenticate = []string{`Basic realm="security", charset="UTF-8"`, `Bearer realm="security"`, `ApiKey`}

// authn is an authenticated caller.
type authn struct {
	username  string
	realm     string
	realmType string
	key       *apiKey // set for API key authentication
}

func (a *authn) isAPIKey() bool { return a != nil && a.key != nil }

func authErr(format string, args ...any) *Error {
	e := newErr(http.StatusUnauthorized, "security_exception", format, args...)
	e.Header = map[string][]string{"WWW-Authenticate": wwwAuthenticate}
	return e
}

// extractCredential is Authenticator.extractCredentialFromHeaderValue:
// case-insensitive scheme, a space, and at least one more character.
func extractCredential(header, scheme string) (string, bool) {
	if len(header) > len(scheme)+1 && strings.EqualFold(header[:len(scheme)+1], scheme+" ") {
		return header[len(scheme)+1:], true
	}
	return "", false
}

// authenticateREST authenticates a REST request. The URI in the messages is
// request.uri(), i.e. the raw path with its query string [mem: ES's
// DefaultAuthenticationFailureHandler uses request.uri()].
func (n *Node) authenticateREST(c *reqCtx) (*authn, *Error) {
	h := c.r.Header.Get("Authorization")
	if cred, ok := extractCredential(h, "ApiKey"); ok {
		return n.authenticateAPIKeyREST(cred)
	}
	if cred, ok := extractCredential(h, "Basic"); ok {
		raw, msg := javaBase64Decode(cred)
		if msg != "" {
			return nil, authErr("invalid basic authentication header encoding").withCause(iae("%s", msg))
		}
		user, pass, found := strings.Cut(string(raw), ":")
		if !found {
			return nil, authErr("invalid basic authentication header value")
		}
		if !n.authenticatePassword(user, pass) {
			n.log.Warn("authentication failed", "user", user, "uri", c.path)
			return nil, authErr("unable to authenticate user [%s] for REST request [%s]", user, c.uri)
		}
		return &authn{username: user, realm: fileRealmName, realmType: fileRealmType}, nil
	}
	if _, ok := extractCredential(h, "Bearer"); ok {
		// esim issues no OAuth2 or service-account tokens, so every bearer
		// token fails like an unknown token [mem: exact detail not verified].
		return nil, authErr("unable to authenticate with provided credentials and anonymous access is not allowed for this request")
	}
	return nil, authErr("missing authentication credentials for REST request [%s]", c.uri)
}

func (n *Node) authenticateAPIKeyREST(cred string) (*authn, *Error) {
	id, secret, perr := parseAPIKeyCredential(cred)
	if perr != nil {
		return nil, authErr("error attempting to authenticate request").withCause(perr)
	}
	k, msg, terminate := n.checkAPIKey(id, secret, keyTypeRest)
	if terminate {
		return nil, authErr("%s", msg)
	}
	if msg != "" {
		n.log.Warn("Authentication using apikey failed - " + msg)
		e := authErr("unable to authenticate with provided credentials and anonymous access is not allowed for this request")
		e.Metadata = []Field{{"additional_unsuccessful_credentials", "API key: " + msg}}
		return nil, e
	}
	return &authn{username: k.username, realm: k.realm, realmType: k.realmType, key: k}, nil
}

// parseAPIKeyCredential is ApiKeyService.parseApiKey: Base64(id:secret).
func parseAPIKeyCredential(cred string) (id, secret string, err *Error) {
	raw, msg := javaBase64Decode(cred)
	if msg != "" {
		return "", "", iae("%s", msg)
	}
	i := strings.IndexByte(string(raw), ':')
	if i < 1 {
		return "", "", iae("invalid ApiKey value")
	}
	return string(raw[:i]), string(raw[i+1:]), nil
}

// checkAPIKey is ApiKeyService.validateApiKeyCredentials. It returns the key
// on success, or the failure message and whether it terminates the
// authenticator chain (type mismatch) rather than letting it continue.
func (n *Node) checkAPIKey(id, secret, wantType string) (*apiKey, string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.keys[id]
	switch {
	case k == nil:
		return nil, "unable to find apikey with id " + id, false
	case k.invalidated:
		return nil, "api key [" + id + "] has been invalidated", false
	case subtle.ConstantTimeCompare([]byte(k.secret), []byte(secret)) != 1:
		return nil, "invalid credentials for API key [" + id + "]", false
	case k.typ != wantType:
		return nil, "authentication expected API key type of [" + wantType + "], but API key [" + id + "] has type [" + k.typ + "]", true
	case k.expiration != nil && *k.expiration <= n.now().UnixMilli():
		return nil, "api key is expired", false
	}
	return k, "", false
}

// AuthenticateCrossCluster authenticates the value of the
// _cross_cluster_access_credentials transport header ("ApiKey <encoded>") as
// the remote cluster server (port 9443) does. It returns the API key id, or an
// *Error whose type and reason are what ES returns and logs
// ("Authentication using apikey failed - <reason>"):
//   - no header: illegal_argument_exception "Cross cluster requests through
//     the dedicated remote cluster server port require transport header ...";
//   - malformed: illegal_argument_exception "failed to extract credentials
//     from headers" caused by the parse error;
//   - unknown id, invalidated, wrong secret, expired: 401 security_exception
//     with ES's message (e.g. "invalid credentials for API key [<id>]");
//   - a REST key: 401 "authentication expected API key type of
//     [cross_cluster], but API key [<id>] has type [rest]".
func (n *Node) AuthenticateCrossCluster(header string) (string, error) {
	if header == "" {
		// [mem] the tail of this message is not verified.
		return "", iae("Cross cluster requests through the dedicated remote cluster server port require transport header [%s] but none found. "+
			"Make sure you have configured remote cluster credentials on the cluster originating the request.", CrossClusterAccessHeader)
	}
	cred, ok := extractCredential(header, "ApiKey")
	if !ok {
		return "", iae("failed to extract credentials from headers").
			withCause(iae("cross cluster access header [%s] value must be a valid API key credential", CrossClusterAccessHeader))
	}
	id, secret, perr := parseAPIKeyCredential(cred)
	if perr != nil {
		return "", iae("failed to extract credentials from headers").withCause(perr)
	}
	_, msg, _ := n.checkAPIKey(id, secret, keyTypeCrossCluster)
	if msg != "" {
		n.log.Warn("Authentication using apikey failed - " + msg)
		return "", newErr(http.StatusUnauthorized, "security_exception", "%s", msg)
	}
	return id, nil
}

// javaBase64Decode is java.util.Base64.getDecoder().decode (RFC 4648 basic
// alphabet, optional padding) with Java's error messages.
func javaBase64Decode(s string) ([]byte, string) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	src := []byte(s)
	if len(src) < 2 {
		return nil, "Input byte[] should at least have 2 bytes for base64 bytes"
	}
	var dst []byte
	bits, shift, sp := 0, 18, 0
	for sp < len(src) {
		c := src[sp]
		sp++
		v := strings.IndexByte(alphabet, c)
		if v < 0 {
			if c == '=' {
				if shift == 6 && (sp == len(src) || func() bool { c2 := src[sp]; sp++; return c2 != '=' }()) || shift == 18 {
					return nil, "Input byte array has wrong 4-byte ending unit"
				}
				break
			}
			return nil, "Illegal base64 character " + strconv.FormatInt(int64(int8(c)), 16)
		}
		bits |= v << shift
		shift -= 6
		if shift < 0 {
			dst = append(dst, byte(bits>>16), byte(bits>>8), byte(bits))
			shift, bits = 18, 0
		}
	}
	switch shift {
	case 6:
		dst = append(dst, byte(bits>>16))
	case 0:
		dst = append(dst, byte(bits>>16), byte(bits>>8))
	case 12:
		return nil, "Last unit does not have enough valid bits"
	}
	if sp < len(src) {
		return nil, "Input byte array has incorrect ending byte at " + strconv.Itoa(sp)
	}
	return dst, ""
}

// authenticateResponse is GET /_security/_authenticate.
func (n *Node) authenticateResponse(a *authn) obj {
	roles := n.assignedRoles(a.username)
	if roles == nil {
		roles = []string{}
	}
	realm := obj{{"name", a.realm}, {"type", a.realmType}}
	authType := "realm"
	if a.isAPIKey() {
		roles = []string{}
		realm = obj{{"name", apiKeyRealm}, {"type", apiKeyRealm}}
		authType = "api_key"
	}
	o := obj{
		{"username", a.username}, {"roles", roles}, {"full_name", nil}, {"email", nil},
		{"metadata", obj{}}, {"enabled", true},
		{"authentication_realm", realm}, {"lookup_realm", realm},
		{"authentication_type", authType},
	}
	if a.isAPIKey() {
		o = append(o, Field{"api_key", obj{{"id", a.key.id}, {"name", a.key.name}}})
	}
	return o
}
