"""The layout of the shared session gateway and names the tests rely on."""
from .gateway import BASE_DOMAIN

# Repository keys that tests address through the subdomain listener.
SUBDOMAIN_KEYS = ["docker-local", "team-a", "team-b", "remote-hub", "dead", "live"]
HOSTS_MARK = "# dockgate-integration-tests"

# The standard layout of the session gateway: one backend, three keys.
# Prefixes differ from the keys on purpose: a gateway that forgot to map key -> prefix
# (in paths, `from=` of mounts, catalog names) cannot pass by accident.
STANDARD_REPOSITORIES = {
    # docker-local (no prefix) holds alpha/ and beta/: an overlap dockgate refuses unless
    # the wider key allows it (roles of team-a/team-b then also apply through docker-local).
    "docker-local": {"backend": "main", "type": "local", "allow_overlap": True},
    "team-a": {"backend": "main", "type": "local", "name_prefix": "alpha/"},
    "team-b": {"backend": "main", "type": "local", "name_prefix": "beta/"},
}
PREFIX = {k: r.get("name_prefix", "") for k, r in STANDARD_REPOSITORIES.items()}
STANDARD_LISTENERS = [
    {"method": "path"},
    {"method": "subdomain", "base_domain": BASE_DOMAIN},
    {"method": "port", "repository": "docker-local"},
    {"method": "port", "repository": "team-a"},
]

METHODS = ["path", "subdomain", "port"]
# Keys that have a port listener in the standard layout.
PORT_KEYS = [l["repository"] for l in STANDARD_LISTENERS if l["method"] == "port"]
