################################################################################
#
# clawos-canary
#
################################################################################

CLAWOS_CANARY_VERSION = 1.0
CLAWOS_CANARY_SITE = $(CLAWOS_REPO_DIR)/kernel-config/modules/clawos_canary
CLAWOS_CANARY_SITE_METHOD = local
CLAWOS_CANARY_LICENSE = GPL-2.0

ifeq ($(BR2_LINUX_KERNEL),y)

$(eval $(kernel-module))

# kernel-module's modules_install signs the copy it installs under
# /lib/modules/<release>/extra (Kbuild's INSTALL_MOD_DIR default, which
# Buildroot does not change) and leaves the build dir's .ko unsigned; the
# module-sig check wants both at /lib/modules, where the busybox backend puts
# them. The hook is added after the eval: kernel-module appends its own
# modules_install hook there, and ours must run after it.
define CLAWOS_CANARY_INSTALL_CANARIES
	$(INSTALL) -D -m 0644 $(TARGET_DIR)/lib/modules/$(LINUX_VERSION_PROBED)/extra/clawos_canary.ko \
		$(TARGET_DIR)/lib/modules/clawos_canary.ko
	$(INSTALL) -D -m 0644 $(@D)/clawos_canary.ko $(TARGET_DIR)/lib/modules/clawos_canary-unsigned.ko
endef
CLAWOS_CANARY_POST_INSTALL_TARGET_HOOKS += CLAWOS_CANARY_INSTALL_CANARIES

else

# One kernel per release: the canary task A-01 built against its own kernel and
# signed with that kernel's key (MODULE_SIG_FORCE accepts no other).
define CLAWOS_CANARY_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0644 $(CLAWOS_KERNEL_DIR)/modules/clawos_canary.ko \
		$(TARGET_DIR)/lib/modules/clawos_canary.ko
	$(INSTALL) -D -m 0644 $(CLAWOS_KERNEL_DIR)/modules/clawos_canary-unsigned.ko \
		$(TARGET_DIR)/lib/modules/clawos_canary-unsigned.ko
endef

endif

$(eval $(generic-package))
