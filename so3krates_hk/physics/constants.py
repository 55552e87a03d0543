"""Physical constants of SO3LR (docs/model.md, "Constants"). Pinned: ASE's CODATA-2014 values, as the original was
trained with."""

KE = 14.399645351950548  # Coulomb constant k_e = E_h a₀ in eV·Å/e² (Coulomb and ZBL)
BOHR = 0.5291772105638411  # a₀ in Å (ZBL screening constant; bohr for dispersion)
HARTREE = 27.211386024367243  # E_h in eV
FINE_STRUCTURE = 0.007297352566206496  # α_fs
