// marginal.stan with its likelihood (value and gradient) from hierlin_fused.hpp (CmdStan user
// header, stanc --allow-undefined): same data, parameters, outputs and density.
functions {
#include priors_functions.stan
#include fused_functions.stan
}
#include marginal_program.stan
