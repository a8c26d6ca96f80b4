/* The CPU backend's op table (fp32, OpenBLAS sgemm, OpenMP threads). */
#pragma once

#include "ops.h"

/* Defined in cpu_ops.c from the per-family files of this folder. */
extern const I2vOps i2v_cpu_ops;
