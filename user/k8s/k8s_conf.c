// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Where the API server is and who we are to it: the in-cluster service account
 * (env + files) or a kubeconfig's current context. The token file is re-read
 * periodically and on 401, since bound service-account tokens rotate (kubelet
 * rewrites the file before expiry).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "common/util.h"
#include "k8s/k8s.h"

#define TOKEN_MAX 8191

static int read_file(const char *path, char *buf, size_t cap, size_t *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0)
		return -errno;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			close(fd);
			return (int)r;
		}
		if (!r)
			break;
		n += (size_t)r;
	}
	close(fd);
	*out = n;
	return 0;
}

static void trim_token(char *t)
{
	size_t n = strlen(t);

	while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
		t[--n] = '\0';
}

int k8s_conf_reload_token(struct k8s_conf *c, uint64_t now_ns, char *err, size_t errlen)
{
	char buf[TOKEN_MAX + 1];
	size_t n;
	int r;

	if (!c->token_file[0])
		return 0;
	c->token_read_ns = now_ns;
	if ((r = read_file(c->token_file, buf, TOKEN_MAX, &n)))
		return errf(err, errlen, r, "token file %s: %s", c->token_file, strerror(-r));
	buf[n] = '\0';
	trim_token(buf);
	if (!strcmp(buf, c->token))
		return 0;
	snprintf(c->token, sizeof(c->token), "%s", buf);
	return 1;
}

int k8s_conf_incluster(struct k8s_conf *c, const char *sa_dir, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char path[600];
	int r;

	memset(c, 0, sizeof(*c));
	if (!host || !*host || !port || !*port)
		return errf(err, errlen, -ENOENT,
			    "not in a cluster: KUBERNETES_SERVICE_HOST/_PORT unset (give "
			    "--kubeconfig FILE)");
	if (!sa_dir)
		sa_dir = K8S_SA_DIR;
	/* an IPv6 service address needs brackets in the URL */
	snprintf(c->server, sizeof(c->server),
		 strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
	snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
	if (access(path, R_OK))
		return errf(err, errlen, -errno, "%s: %s", path, strerror(errno));
	c->ca_file = strdup(path);
	snprintf(c->token_file, sizeof(c->token_file), "%s/token", sa_dir);
	if (!c->ca_file)
		return -ENOMEM;
	r = k8s_conf_reload_token(c, mono_ns(), err, errlen);
	return r < 0 ? r : 0;
}

void k8s_conf_free(struct k8s_conf *c)
{
	free(c->ca_file);
	free(c->ca_pem);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	free(c->key_pem);
	memset(c, 0, sizeof(*c));
}

/* ---- kubeconfig ---- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	yaml_node_pair_t *p;

	if (!m || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);

		if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static const char *scalar(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	yaml_node_t *n = map_get(d, m, key);

	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The entry of list named name (clusters/users/contexts) and its inner mapping. */
static yaml_node_t *named(yaml_document_t *d, yaml_node_t *root, const char *list, const char *name,
			  const char *inner)
{
	yaml_node_t *l = map_get(d, root, list);
	yaml_node_item_t *it;

	if (!l || l->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (it = l->data.sequence.items.start; it < l->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(d, *it);
		const char *n = scalar(d, e, "name");

		if (n && !strcmp(n, name))
			return map_get(d, e, inner);
	}
	return NULL;
}

static int b64val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

static char *b64dec(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n * 3 / 4 + 4);
	unsigned acc = 0, bits = 0;

	if (!out)
		return NULL;
	for (; *s; s++) {
		int v = b64val((unsigned char)*s);

		if (*s == '=' || *s == '\n' || *s == '\r' || *s == ' ')
			continue;
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return out;
}

static char *path_in(const char *base_dir, const char *p)
{
	size_t n;
	char *s;

	if (p[0] == '/' || !base_dir || !*base_dir)
		return strdup(p);
	n = strlen(base_dir) + strlen(p) + 2;
	s = malloc(n);
	if (s)
		snprintf(s, n, "%s/%s", base_dir, p);
	return s;
}

static int take_file(char **dst, const char *base_dir, const char *p)
{
	if (!p)
		return 0;
	*dst = path_in(base_dir, p);
	return *dst ? 0 : -ENOMEM;
}

static int take_data(char **dst, const char *p, const char *what, char *err, size_t errlen)
{
	if (!p)
		return 0;
	*dst = b64dec(p);
	return *dst ? 0 : errf(err, errlen, -EINVAL, "kubeconfig: %s is not base64", what);
}

static int from_doc(struct k8s_conf *c, yaml_document_t *d, const char *base_dir, char *err,
		    size_t errlen)
{
	yaml_node_t *root = yaml_document_get_root_node(d), *ctx, *cl, *us;
	const char *cur, *cname, *uname, *s;
	int r;

	if (!root || root->type != YAML_MAPPING_NODE)
		return errf(err, errlen, -EINVAL, "kubeconfig: not a mapping");
	cur = scalar(d, root, "current-context");
	if (!cur || !*cur)
		return errf(err, errlen, -EINVAL, "kubeconfig: no current-context");
	ctx = named(d, root, "contexts", cur, "context");
	if (!ctx)
		return errf(err, errlen, -EINVAL, "kubeconfig: context \"%s\" not found", cur);
	cname = scalar(d, ctx, "cluster");
	uname = scalar(d, ctx, "user");
	cl = cname ? named(d, root, "clusters", cname, "cluster") : NULL;
	if (!cl)
		return errf(err, errlen, -EINVAL,
			    "kubeconfig: cluster \"%s\" of context \"%s\" "
			    "not found",
			    cname ? cname : "", cur);
	s = scalar(d, cl, "server");
	if (!s || !*s)
		return errf(err, errlen, -EINVAL, "kubeconfig: cluster \"%s\" has no server",
			    cname);
	if (strncmp(s, "https://", 8) && strncmp(s, "http://", 7))
		return errf(err, errlen, -EINVAL, "kubeconfig: server \"%s\" is not an http(s) URL",
			    s);
	snprintf(c->server, sizeof(c->server), "%s", s);
	while (strlen(c->server) > 8 && c->server[strlen(c->server) - 1] == '/')
		c->server[strlen(c->server) - 1] = '\0';
	s = scalar(d, cl, "insecure-skip-tls-verify");
	c->insecure = s && !strcmp(s, "true");
	if ((r = take_file(&c->ca_file, base_dir, scalar(d, cl, "certificate-authority"))) ||
	    (r = take_data(&c->ca_pem, scalar(d, cl, "certificate-authority-data"),
			   "certificate-authority-data", err, errlen)))
		return r;
	us = uname ? named(d, root, "users", uname, "user") : NULL;
	if (uname && !us)
		return errf(err, errlen, -EINVAL, "kubeconfig: user \"%s\" not found", uname);
	if (!us)
		return 0;
	if ((s = scalar(d, us, "token")))
		snprintf(c->token, sizeof(c->token), "%s", s);
	if ((s = scalar(d, us, "tokenFile"))) {
		char *p = path_in(base_dir, s);

		if (!p)
			return -ENOMEM;
		snprintf(c->token_file, sizeof(c->token_file), "%s", p);
		free(p);
	}
	if ((r = take_file(&c->cert_file, base_dir, scalar(d, us, "client-certificate"))) ||
	    (r = take_file(&c->key_file, base_dir, scalar(d, us, "client-key"))) ||
	    (r = take_data(&c->cert_pem, scalar(d, us, "client-certificate-data"),
			   "client-certificate-data", err, errlen)) ||
	    (r = take_data(&c->key_pem, scalar(d, us, "client-key-data"), "client-key-data", err,
			   errlen)))
		return r;
	if (map_get(d, us, "exec") || map_get(d, us, "auth-provider"))
		return errf(err, errlen, -ENOTSUP,
			    "kubeconfig: user \"%s\": exec and auth-provider plugins are not "
			    "supported (use a token, tokenFile or client certificate)",
			    uname);
	return 0;
}

int k8s_conf_parse(struct k8s_conf *c, const char *text, size_t len, const char *base_dir,
		   char *err, size_t errlen)
{
	yaml_parser_t p;
	yaml_document_t d;
	int r;

	memset(c, 0, sizeof(*c));
	if (!yaml_parser_initialize(&p))
		return -ENOMEM;
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &d)) {
		r = errf(err, errlen, -EINVAL, "kubeconfig:%zu:%zu: %s", p.problem_mark.line + 1,
			 p.problem_mark.column + 1, p.problem ? p.problem : "invalid YAML");
		yaml_parser_delete(&p);
		return r;
	}
	r = from_doc(c, &d, base_dir, err, errlen);
	yaml_document_delete(&d);
	yaml_parser_delete(&p);
	if (r) {
		k8s_conf_free(c);
		return r;
	}
	if (c->token_file[0] && (r = k8s_conf_reload_token(c, mono_ns(), err, errlen)) < 0) {
		k8s_conf_free(c);
		return r;
	}
	return 0;
}

int k8s_conf_kubeconfig(struct k8s_conf *c, const char *path, char *err, size_t errlen)
{
	static char buf[1 << 20];
	char dir[512], *slash;
	size_t n;
	int r;

	if ((r = read_file(path, buf, sizeof(buf) - 1, &n)))
		return errf(err, errlen, r, "%s: %s", path, strerror(-r));
	buf[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	r = k8s_conf_parse(c, buf, n, dir, err, errlen);
	if (r && strncmp(err, "kubeconfig", 10) == 0) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s%s", path, err + 10);
		snprintf(err, errlen, "%s", tmp);
	}
	return r;
}
