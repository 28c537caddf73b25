package esim

import (
	"fmt"
	"time"
)

// The cluster license as Elasticsearch keeps it in its cluster state and reports it with
// GET /_license (docs: "Get license information", cluster privilege monitor). A test sets its
// type and status (SetLicense); a new node has an active enterprise license, the license an
// ECK operator with an enterprise license installs into every Elasticsearch it manages, so the
// API-key model works as on a licensed deployment. Self-managed Elasticsearch starts on basic.
//
// What esim enforces of it is the licensed feature of the API-key model,
// "advanced-remote-cluster-security" (x-pack Security.java, minimum operation mode ENTERPRISE,
// needs an active license; trial allows every feature, XPackLicenseState):
//   - POST and PUT /_security/cross_cluster/api_key answer 403 security_exception "current
//     license is non-compliant for [advanced-remote-cluster-security]" before the body is read
//     (RestCreateCrossClusterApiKeyAction.checkFeatureAvailable, its test testLicenseEnforcement);
//   - the remote cluster server refuses the handshake of a cross-cluster connection, and the
//     remote cluster client does not open one (CrossClusterAccessServerTransportFilter and
//     SecurityServerTransportInterceptor.sendWithCrossClusterAccessHeaders check the feature);
//     _remote/info then reports connected: false (RemoteClusterSecurityLicensingAndFeatureUsageRestIT).
//
// Not modelled: the other licensed features, license signatures and PUT/DELETE /_license, the
// feature usage API, expiry by the clock (a test sets status "expired").

// Feature names of Elasticsearch's licensed features that esim checks.
const FeatureAdvancedRemoteClusterSecurity = "advanced-remote-cluster-security"

// License types (license.type) and statuses (license.status) as GET /_license reports them.
const (
	LicenseBasic      = "basic"
	LicenseGold       = "gold"
	LicensePlatinum   = "platinum"
	LicenseEnterprise = "enterprise"
	LicenseTrial      = "trial"
	LicenseActive     = "active"
	LicenseExpired    = "expired"
)

// licenseState is the cluster's license.
type licenseState struct {
	typ, status string
	uid         string
	issued      time.Time
}

// operationModes orders the license types as License.OperationMode does.
var operationModes = map[string]int{LicenseBasic: 1, "standard": 2, LicenseGold: 3, LicensePlatinum: 4, LicenseEnterprise: 5, LicenseTrial: 6}

// SetLicense sets the type (basic, standard, gold, platinum, enterprise, trial) and status
// (active, expired) of the cluster's license, as installing a license or its expiry would.
func (n *Node) SetLicense(typ, status string) error {
	if _, ok := operationModes[typ]; !ok {
		return fmt.Errorf("failed to set the license: unknown type %q", typ)
	}
	if status != LicenseActive && status != LicenseExpired {
		return fmt.Errorf("failed to set the license: status %q, want active or expired", status)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.license = licenseState{typ: typ, status: status, uid: randomUUID(), issued: n.now()}
	n.notifyLocked()
	return nil
}

// License returns the type and status of the cluster's license.
func (n *Node) License() (typ, status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.license.typ, n.license.status
}

// CrossClusterAllowed reports whether the license allows the API-key model
// (advanced-remote-cluster-security: enterprise or trial, active).
func (n *Node) CrossClusterAllowed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.license.allows(LicenseEnterprise)
}

// allows is XPackLicenseState.isAllowedByLicense for a feature that needs an active license.
func (l licenseState) allows(minimum string) bool {
	if l.status != LicenseActive {
		return false
	}
	return l.typ == LicenseTrial || operationModes[l.typ] >= operationModes[minimum]
}

// ComplianceError is the error Elasticsearch answers when the license does not allow a feature
// (LicenseUtils.newComplianceException): 403 security_exception with the feature in the
// es.license.expired.feature header, rendered as license.expired.feature.
func ComplianceError(feature string) *Error {
	e := newErr(403, "security_exception", "current license is non-compliant for [%s]", feature)
	e.Metadata = []Field{{"license.expired.feature", feature}}
	return e
}

// requireCrossClusterLicense is the REST handlers' feature check of the cross-cluster API key
// APIs: it runs before the body is parsed.
func (n *Node) requireCrossClusterLicense() *Error {
	if !n.CrossClusterAllowed() {
		return ComplianceError(FeatureAdvancedRemoteClusterSecurity)
	}
	return nil
}

// getLicense is GET /_license. Types are reported as they are (accept_enterprise is true in
// 8.x and later).
func (n *Node) getLicense(*reqCtx) (action, error) {
	return func() (*response, error) {
		n.mu.Lock()
		l := n.license
		name := n.cfg.ClusterName
		n.mu.Unlock()
		issued := l.issued.UTC()
		lic := obj{
			{"status", l.status}, {"uid", l.uid}, {"type", l.typ},
			{"issue_date", issued.Format("2006-01-02T15:04:05.000Z")}, {"issue_date_in_millis", issued.UnixMilli()},
		}
		if l.typ != LicenseBasic {
			// A basic license never expires and reports no expiry; a trial lasts 30 days.
			exp := issued.Add(365 * 24 * time.Hour)
			if l.typ == LicenseTrial {
				exp = issued.Add(30 * 24 * time.Hour)
			}
			lic = append(lic, Field{"expiry_date", exp.Format("2006-01-02T15:04:05.000Z")}, Field{"expiry_date_in_millis", exp.UnixMilli()})
		}
		lic = append(lic, Field{"max_nodes", 1000}, Field{"max_resource_units", nil}, Field{"issued_to", name},
			Field{"issuer", "elasticsearch"}, Field{"start_date_in_millis", -1})
		return ok(obj{{"license", lic}})
	}, nil
}

// randomUUID is a random UUID in its usual text form (license.uid).
func randomUUID() string {
	b := []byte(randomID(16))
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
