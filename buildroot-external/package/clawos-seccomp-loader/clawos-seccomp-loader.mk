################################################################################
#
# clawos-seccomp-loader
#
################################################################################

# The source lives next to this file: nothing is downloaded, so there is no .hash.
CLAWOS_SECCOMP_LOADER_VERSION = 1.0
CLAWOS_SECCOMP_LOADER_SITE = $(BR2_EXTERNAL_CLAWOS_PATH)/package/clawos-seccomp-loader/src
CLAWOS_SECCOMP_LOADER_SITE_METHOD = local
CLAWOS_SECCOMP_LOADER_LICENSE = Apache-2.0

define CLAWOS_SECCOMP_LOADER_BUILD_CMDS
	$(TARGET_CC) $(TARGET_CFLAGS) $(TARGET_LDFLAGS) -Wall -Wextra -Werror \
		-o $(@D)/clawos-seccomp-loader $(@D)/clawos-seccomp-loader.c
endef

define CLAWOS_SECCOMP_LOADER_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/clawos-seccomp-loader $(TARGET_DIR)/usr/sbin/clawos-seccomp-loader
endef

$(eval $(generic-package))
