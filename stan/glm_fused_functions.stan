  // Implemented in C++ (hierlin_fused.hpp, a CmdStan user header): value and gradient in two
  // passes over the groups. glm_pure_functions.stan defines the same functions in Stan (what
  // glm_marginal.stan and glm_collapsed.stan run); tests hold both equal. *_loop_ll: any number
  // of group terms other than one or two (group by group, the block form).
  real hierlin_glm_marginal_ll(vector beta, vector svec, real sdet, real sigma, int N, data vector m2,
                               data vector e1, data vector e2, data matrix F1, data matrix F2,
                               data matrix MA11, data matrix MA12, data matrix MA22, data vector detM2,
                               data matrix C2, data vector beta_star, data real rss_min);
  real hierlin_glm_collapsed_ll(vector svec, real sdet, real sigma, int N, data vector m2, data vector e1,
                                data vector e2, data matrix F1, data matrix F2, data matrix MA11,
                                data matrix MA12, data matrix MA22, data vector detM2, data matrix FF1,
                                data matrix FF2, data matrix FF3, data matrix FE1, data matrix FE2,
                                data matrix FE3, data vector EE1, data vector EE2, data vector EE3,
                                data matrix C2, data vector beta_star, data real rss_min,
                                data vector beta_loc, data vector beta_scale);
  real hierlin_glm_marginal_loop_ll(vector beta, matrix L, real sigma, int N, data array[] matrix M,
                                    data array[] vector e_star, data array[] matrix F, data matrix C2,
                                    data vector beta_star, data real rss_min);
  real hierlin_glm_collapsed_loop_ll(matrix L, real sigma, int N, data array[] matrix M, data array[] vector e_star,
                                     data array[] matrix F, data matrix C2, data vector beta_star, data real rss_min,
                                     data vector beta_loc, data vector beta_scale);
