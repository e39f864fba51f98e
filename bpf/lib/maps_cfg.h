/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Maps holding the compiled rules, breaker state and metrics. The BPF programs do
 * not read them; they are declared in the BPF object so that ringmeshd creates and
 * pins them with everything else (owned by the rules/CLI work, see include/ringmesh/cfg.h). */
#ifndef RM_BPF_MAPS_CFG_H
#define RM_BPF_MAPS_CFG_H
#endif
