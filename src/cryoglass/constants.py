"""Physical constants used across cryoglass (SI unless a name says otherwise)."""

#: Electron rest energy m0 c^2 [eV].
ELECTRON_REST_ENERGY_EV = 510998.95
#: Planck constant times speed of light, h c [eV Å].
HC_EV_ANGSTROM = 12398.419843320026
#: Electron rest mass [kg].
ELECTRON_MASS_KG = 9.1093837015e-31
#: Elementary charge [C].
ELEMENTARY_CHARGE_C = 1.602176634e-19
#: Planck constant [J s].
PLANCK_J_S = 6.62607015e-34
#: Speed of light [m/s].
SPEED_OF_LIGHT_M_S = 299792458.0
