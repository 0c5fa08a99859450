// SPDX-License-Identifier: GPL-2.0
/*
 * clawos_canary: the smallest out-of-tree module. The build signs it with the
 * kernel's own key; the boot checks load it (signed: accepted, unsigned:
 * refused under MODULE_SIG_FORCE) and look for the line printed below.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init clawos_canary_init(void)
{
	pr_info("clawos_canary: loaded\n");
	return 0;
}

static void __exit clawos_canary_exit(void)
{
	pr_info("clawos_canary: unloaded\n");
}

module_init(clawos_canary_init);
module_exit(clawos_canary_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ClawOS module-signing canary");
