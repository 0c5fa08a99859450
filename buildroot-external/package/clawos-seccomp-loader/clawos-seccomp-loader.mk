################################################################################
#
# clawos-seccomp-loader
#
################################################################################

# The source lives next to this file: nothing is downloaded, so there is no .hash.
# clawos-build's seccomp-compile step (C-08) compiles the same src/clawos-seccomp-exec.c.
CLAWOS_SECCOMP_LOADER_VERSION = 2.0
CLAWOS_SECCOMP_LOADER_SITE = $(BR2_EXTERNAL_CLAWOS_PATH)/package/clawos-seccomp-loader/src
CLAWOS_SECCOMP_LOADER_SITE_METHOD = local
CLAWOS_SECCOMP_LOADER_LICENSE = Apache-2.0

# Static and without build id, with the same flags as seccomp-compile.
define CLAWOS_SECCOMP_LOADER_BUILD_CMDS
	$(TARGET_CC) $(TARGET_CFLAGS) $(TARGET_LDFLAGS) -static -O2 -Wall -Wextra -Werror \
		-ffile-prefix-map=$(@D)=. -Wl,--build-id=none \
		-o $(@D)/clawos-seccomp-exec $(@D)/clawos-seccomp-exec.c
endef

define CLAWOS_SECCOMP_LOADER_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/clawos-seccomp-exec $(TARGET_DIR)/usr/sbin/clawos-seccomp-exec
endef

$(eval $(generic-package))
