package usher.authz

import rego.v1

result := yaml.unmarshal("enabled: yes\ndebug: off\nname: on-call\nquoted: 'yes'\n")
