/* Marks the library's public functions: libi2v is compiled with -fvisibility=hidden, so a host
 * linking the plugin or the library sees these and nothing else of the engine. */
#pragma once

#define I2V_API __attribute__((visibility("default")))
