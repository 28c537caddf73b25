package esuser

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ecklink/ecklink/agent/cache"
	"github.com/ecklink/ecklink/agent/elastic"
	"github.com/ecklink/ecklink/agent/wiring"
)

// labelUser names the Elasticsearch on the user's and the roles' Secrets.
const labelUser = "ecklink.io/elasticsearch-user"

// ownLabels are the labels of the agent's Secrets. No owner references and no ECK labels: ECK's
// docs warn that copying those causes cascade deletions.
func ownLabels(es string) map[string]string {
	return map[string]string{cache.ManagedByLabel: cache.ManagedByValue, labelUser: es}
}

// randomPassword is 32 random bytes, URL-safe base64 (43 characters: within bcrypt's 72 bytes,
// above ECK's minimum of 6).
func randomPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("failed to generate a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ensureSecrets writes the roles Secret and the user Secret with the given roles, keeping the
// password once generated. It never takes over a Secret of that name it did not create.
func (c *Controller) ensureSecrets(ctx context.Context, key types.NamespacedName, roles []string) error {
	if err := c.ensure(ctx, key, RolesSecretName(key.Name), corev1.SecretTypeOpaque, func(data map[string][]byte) (map[string][]byte, error) {
		return map[string][]byte{"roles.yml": RolesYML()}, nil
	}); err != nil {
		return err
	}
	return c.ensure(ctx, key, elastic.UserSecretName(key.Name), corev1.SecretTypeBasicAuth, func(data map[string][]byte) (map[string][]byte, error) {
		password := string(data[corev1.BasicAuthPasswordKey])
		if password == "" {
			var err error
			if password, err = c.cfg.NewPassword(); err != nil {
				return nil, err
			}
		}
		return map[string][]byte{
			corev1.BasicAuthUsernameKey: []byte(Username),
			corev1.BasicAuthPasswordKey: []byte(password),
			// ECK's basic-auth file realm Secrets list roles comma-separated.
			"roles": []byte(strings.Join(roles, ",")),
		}, nil
	})
}

// ensure creates or updates one Secret with the data want derives from the current data. The
// cached copy answers when nothing is to change, so a reconcile costs no API call then.
func (c *Controller) ensure(ctx context.Context, key types.NamespacedName, name string, typ corev1.SecretType, want func(map[string][]byte) (map[string][]byte, error)) error {
	if cached, ok := c.cfg.Cache.OwnSecret(key.Namespace, name); ok {
		if data, err := want(cached.Data); err == nil && maps.EqualFunc(cached.Data, data, bytes.Equal) && maps.Equal(cached.Labels, ownLabels(key.Name)) {
			return nil
		}
	}
	secrets := c.cfg.Kube.CoreV1().Secrets(key.Namespace)
	cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		data, err := want(nil)
		if err != nil {
			return err
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: key.Namespace, Labels: ownLabels(key.Name)}, Type: typ, Data: data}
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("failed to create Secret %s/%s: %w", key.Namespace, name, err)
		}
		c.log.Info("created the agent's user secret", "secret", key.Namespace+"/"+name)
		return nil
	case err != nil:
		return fmt.Errorf("failed to read Secret %s/%s: %w", key.Namespace, name, err)
	}
	if cur.Labels[cache.ManagedByLabel] != cache.ManagedByValue {
		return fmt.Errorf("secret %s/%s exists and is not the agent's (no label %s=%s): remove it, or set elasticsearch.useElasticUser",
			key.Namespace, name, cache.ManagedByLabel, cache.ManagedByValue)
	}
	data, err := want(cur.Data)
	if err != nil {
		return err
	}
	if maps.EqualFunc(cur.Data, data, bytes.Equal) && maps.Equal(cur.Labels, ownLabels(key.Name)) {
		return nil
	}
	upd := cur.DeepCopy()
	upd.Data, upd.Labels = data, ownLabels(key.Name)
	if _, err := secrets.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("failed to update Secret %s/%s: %w", key.Namespace, name, err)
	}
	c.log.Info("updated the agent's user secret", "secret", key.Namespace+"/"+name, "roles", string(data["roles"]))
	return nil
}

// hasSecrets reports whether the cache holds either of the agent's Secrets of key.
func (c *Controller) hasSecrets(key types.NamespacedName) bool {
	for _, name := range []string{elastic.UserSecretName(key.Name), RolesSecretName(key.Name)} {
		if _, ok := c.cfg.Cache.OwnSecret(key.Namespace, name); ok {
			return true
		}
	}
	return false
}

// deleteSecrets removes the user's and the roles' Secrets, if they are the agent's.
func (c *Controller) deleteSecrets(ctx context.Context, key types.NamespacedName) error {
	secrets := c.cfg.Kube.CoreV1().Secrets(key.Namespace)
	for _, name := range []string{elastic.UserSecretName(key.Name), RolesSecretName(key.Name)} {
		cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("failed to read Secret %s/%s: %w", key.Namespace, name, err)
		}
		if cur.Labels[cache.ManagedByLabel] != cache.ManagedByValue {
			continue
		}
		if err := secrets.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to delete Secret %s/%s: %w", key.Namespace, name, err)
		}
		c.log.Info("deleted the agent's user secret", "secret", key.Namespace+"/"+name)
	}
	return nil
}

// wire names the Secrets in spec.auth, once (wiring.Editor: from the cached object, again on the
// current one after a conflict).
func (c *Controller) wire(ctx context.Context, es *unstructured.Unstructured) error {
	_, changes, err := c.editor.Edit(ctx, es, "wire the agent's user into", func(obj *unstructured.Unstructured) ([]string, error) {
		return wiring.ApplyAuth(obj, Auth(obj.GetName()))
	})
	if err != nil || len(changes) == 0 {
		return err
	}
	c.log.Info("agent's user wired (no restart: the file realm reloads)", "elasticsearch", es.GetNamespace()+"/"+es.GetName(), "changes", strings.Join(changes, "; "))
	return nil
}

func wiringRecorded(es *unstructured.Unstructured) bool { return wiring.RecordedAuth(es) }

// unwire removes the spec.auth entries the agent added.
func (c *Controller) unwire(ctx context.Context, es *unstructured.Unstructured) error {
	_, changes, err := c.editor.Edit(ctx, es, "unwire the agent's user from", func(obj *unstructured.Unstructured) ([]string, error) {
		return wiring.RemoveAuth(obj, Auth(obj.GetName()))
	})
	if err != nil {
		return err
	}
	c.log.Info("agent's user unwired", "elasticsearch", es.GetNamespace()+"/"+es.GetName(), "changes", strings.Join(changes, "; "))
	return nil
}
