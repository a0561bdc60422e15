package usher.authz

import rego.v1

default allow := false

allow if input.attributes.source.principal

anonymous if not input.attributes.source.principal

result := {"allow": allow, "anonymous": anonymous, "peer_ip": input.attributes.source.address.socketAddress.address}
