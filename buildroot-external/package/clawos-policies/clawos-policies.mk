################################################################################
#
# clawos-policies
#
################################################################################

# The frozen P1 specs of this repository: nothing is downloaded, so there is no .hash.
CLAWOS_POLICIES_VERSION = 1.0.0
CLAWOS_POLICIES_SITE = $(CLAWOS_REPO_DIR)/specs/p1
CLAWOS_POLICIES_SITE_METHOD = local
CLAWOS_POLICIES_LICENSE = Apache-2.0
CLAWOS_POLICIES_FILES = seccomp-whitelist.yaml apparmor-rules.yaml

define CLAWOS_POLICIES_INSTALL_TARGET_CMDS
	$(foreach f,$(CLAWOS_POLICIES_FILES),\
		$(INSTALL) -D -m 0644 $(@D)/$(f) $(TARGET_DIR)/etc/clawos/policies/$(f)$(sep))
endef

$(eval $(generic-package))
