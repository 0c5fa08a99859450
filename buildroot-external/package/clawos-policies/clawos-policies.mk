################################################################################
#
# clawos-policies
#
################################################################################

# The frozen P1 specs of this repository: nothing is downloaded, so there is no .hash.
CLAWOS_POLICIES_VERSION = 1.1.0
CLAWOS_POLICIES_SITE = $(CLAWOS_REPO_DIR)/specs/p1
CLAWOS_POLICIES_SITE_METHOD = local
CLAWOS_POLICIES_LICENSE = Apache-2.0
CLAWOS_POLICIES_FILES = seccomp-whitelist.yaml apparmor-rules.yaml
# F-06's compiled AppArmor policy (clawos-build's apparmor-compile step; Buildroot
# has no host apparmor_parser). A run with another build dir passes
# CLAWOS_POLICIES_APPARMOR_DIR=<build dir>/security/apparmor/policy to make.
CLAWOS_POLICIES_APPARMOR_DIR ?= $(CLAWOS_REPO_DIR)/build/security/apparmor/policy

define CLAWOS_POLICIES_INSTALL_TARGET_CMDS
	$(foreach f,$(CLAWOS_POLICIES_FILES),\
		$(INSTALL) -D -m 0644 $(@D)/$(f) $(TARGET_DIR)/etc/clawos/policies/$(f)$(sep))
	test -s $(CLAWOS_POLICIES_APPARMOR_DIR)/profiles.list || { \
		echo "clawos-policies: no compiled AppArmor policy in $(CLAWOS_POLICIES_APPARMOR_DIR) (run clawos-build p2: task F-06)" >&2; \
		exit 1; }
	mkdir -p $(TARGET_DIR)/etc/apparmor/clawos
	$(INSTALL) -m 0644 $(CLAWOS_POLICIES_APPARMOR_DIR)/* $(TARGET_DIR)/etc/apparmor/clawos/
endef

$(eval $(generic-package))
