package envoy.authz

import rego.v1

v3 if input.version == {"ext_authz": "v3", "encoding": "protojson"}

port_ok if input.attributes.destination.address.socketAddress.portValue in {8443, 9443}

result := {"v3": v3, "port_ok": port_ok, "scheme": input.attributes.request.http.scheme}
