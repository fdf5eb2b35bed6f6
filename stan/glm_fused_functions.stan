  // Implemented in C++ (hierlin_fused.hpp, a CmdStan user header): value and gradient in two
  // passes over the groups. glm_pure_functions.stan defines the same functions in Stan (what
  // glm_marginal.stan and glm_collapsed.stan run); tests hold both equal.
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
  // Three or more group terms: not fused (formulas choose the pure program for them); these stand in
  // for glm_loop_functions.stan so that the fused program builds no autodiff for the loop forms.
  real glm_marginal_ll(vector beta, matrix L, real sigma, int N, array[] matrix M, array[] vector e_star,
                       array[] matrix F, matrix C2, vector beta_star, real rss_min) {
    reject("glm_marginal_fused computes one or two group terms and this design has ", cols(L),
           "; run glm_marginal (fused=False)");
  }
  real glm_collapsed_ll(matrix L, real sigma, int N, array[] matrix M, array[] vector e_star, array[] matrix F,
                        matrix C2, vector beta_star, real rss_min, vector beta_loc, vector beta_scale) {
    reject("glm_collapsed_fused computes one or two group terms and this design has ", cols(L),
           "; run glm_collapsed (fused=False)");
  }
