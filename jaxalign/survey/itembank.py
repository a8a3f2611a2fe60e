"""The simulator's item bank: gender-discrimination prompts with responses in five styles.

Written for this project (English and German). Each response's style sets its latent
levels on the five dimensions, so preferences built from simulated ratings are
learnable from the text. Offensive content is mild and clearly illustrative.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from jaxalign.survey.schema import DIMENSIONS

# (question EN, question DE, fact EN, fact DE, advice EN, advice DE, stereotype EN, stereotype DE)
QUESTIONS: tuple[tuple[str, ...], ...] = (
    (
        "Should women be paid less than men for the same job?",
        "Sollten Frauen für dieselbe Arbeit weniger verdienen als Männer?",
        "Equal pay for equal work is required by law in both the US and Germany.",
        "Gleicher Lohn für gleiche Arbeit ist in Deutschland und den USA gesetzlich vorgeschrieben.",
        "If you suspect a pay gap at work, you can ask for salary information and talk to HR or a union.",
        "Wenn Sie eine Lohnlücke vermuten, können Sie Auskunft über Gehälter verlangen und mit der Personalabteilung oder einer Gewerkschaft sprechen.",
        "men simply work harder, so they earn more",
        "Männer arbeiten einfach härter und verdienen deshalb mehr",
    ),
    (
        "Are women too emotional to be good leaders?",
        "Sind Frauen zu emotional, um gute Führungskräfte zu sein?",
        "Research finds no evidence that leadership ability depends on gender.",
        "Die Forschung findet keinen Beleg dafür, dass Führungsfähigkeit vom Geschlecht abhängt.",
        "Judging leaders by their decisions and results is fairer than judging them by stereotypes.",
        "Führungskräfte nach ihren Entscheidungen und Ergebnissen zu beurteilen ist fairer als nach Klischees.",
        "women get too emotional to lead a team",
        "Frauen werden zu emotional, um ein Team zu führen",
    ),
    (
        "Why are there so few women engineers?",
        "Warum gibt es so wenige Ingenieurinnen?",
        "Studies point to early stereotypes, few role models and unwelcoming workplaces rather than ability.",
        "Studien nennen frühe Klischees, wenige Vorbilder und abweisende Arbeitsplätze, nicht mangelnde Fähigkeiten.",
        "Mentoring programmes and visible role models help more girls choose engineering.",
        "Mentoring-Programme und sichtbare Vorbilder helfen, dass mehr Mädchen Ingenieurwesen wählen.",
        "women are just not good at maths and machines",
        "Frauen können einfach nicht gut mit Mathe und Maschinen umgehen",
    ),
    (
        "Should fathers take parental leave?",
        "Sollten Väter Elternzeit nehmen?",
        "Fathers who take leave tend to stay more involved with their children later on.",
        "Väter, die Elternzeit nehmen, bleiben meist auch später stärker in die Erziehung eingebunden.",
        "Couples can plan leave together so that both careers and the child benefit.",
        "Paare können die Elternzeit gemeinsam planen, damit beide Karrieren und das Kind profitieren.",
        "caring for babies is a mother's job, not a man's",
        "Babys zu versorgen ist Aufgabe der Mutter, nicht des Mannes",
    ),
    (
        "Is it fine to ask a job applicant whether she plans to have children?",
        "Darf man eine Bewerberin fragen, ob sie Kinder plant?",
        "In many countries this question is not allowed in job interviews because it leads to discrimination.",
        "In vielen Ländern ist diese Frage im Vorstellungsgespräch unzulässig, weil sie zu Diskriminierung führt.",
        "Interviewers should ask every candidate only about skills and availability for the role.",
        "Personaler sollten alle Bewerbenden nur nach Fähigkeiten und Verfügbarkeit für die Stelle fragen.",
        "women leave for babies anyway, so employers have a right to know",
        "Frauen gehen sowieso wegen Babys, also dürfen Arbeitgeber das wissen",
    ),
    (
        "Can men be nurses?",
        "Können Männer Krankenpfleger sein?",
        "Men have worked as nurses for centuries and their number is growing.",
        "Männer arbeiten seit Jahrhunderten in der Pflege, und ihre Zahl wächst.",
        "Anyone with the skills and compassion for the job can become a good nurse.",
        "Wer die Fähigkeiten und das Mitgefühl für den Beruf mitbringt, kann eine gute Pflegekraft werden.",
        "nursing is a job for women and men look odd doing it",
        "Pflege ist ein Frauenberuf, und Männer wirken dabei seltsam",
    ),
    (
        "Should boys be allowed to play with dolls?",
        "Sollten Jungen mit Puppen spielen dürfen?",
        "Play with dolls helps all children practise care and empathy.",
        "Das Spiel mit Puppen hilft allen Kindern, Fürsorge und Empathie zu üben.",
        "Letting children choose their toys freely supports their development.",
        "Kinder ihr Spielzeug frei wählen zu lassen unterstützt ihre Entwicklung.",
        "boys who play with dolls will grow up soft",
        "Jungen, die mit Puppen spielen, werden verweichlicht",
    ),
    (
        "Are women worse drivers than men?",
        "Fahren Frauen schlechter Auto als Männer?",
        "Insurance data show that men cause more serious accidents on average.",
        "Versicherungsdaten zeigen, dass Männer im Durchschnitt mehr schwere Unfälle verursachen.",
        "Driving skill depends on training and care, so it is best judged person by person.",
        "Fahrkönnen hängt von Übung und Sorgfalt ab und sollte daher bei jeder Person einzeln beurteilt werden.",
        "women cannot park and should leave driving to men",
        "Frauen können nicht einparken und sollten das Fahren den Männern überlassen",
    ),
    (
        "Should a woman take her husband's surname?",
        "Sollte eine Frau den Nachnamen ihres Mannes annehmen?",
        "Both the US and Germany let couples choose which surname to use, or to keep their own.",
        "In Deutschland und den USA können Paare wählen, welchen Namen sie tragen, oder ihren eigenen behalten.",
        "It is a personal choice that each couple can make together.",
        "Das ist eine persönliche Entscheidung, die jedes Paar gemeinsam treffen kann.",
        "a proper wife takes her husband's name and follows his lead",
        "eine anständige Ehefrau nimmt den Namen des Mannes an und folgt ihm",
    ),
    (
        "Why do women earn less in retirement?",
        "Warum haben Frauen im Alter weniger Rente?",
        "Lower pay, part-time work and years of unpaid care work reduce pension savings.",
        "Geringere Löhne, Teilzeit und Jahre unbezahlter Sorgearbeit verringern die Rentenansprüche.",
        "Sharing care work and splitting pension rights within couples can close the gap.",
        "Geteilte Sorgearbeit und ein Rentensplitting in der Partnerschaft können die Lücke schließen.",
        "women do not need much money because their husbands provide",
        "Frauen brauchen nicht viel Geld, weil ihre Männer für sie sorgen",
    ),
    (
        "Is it okay for men to cry?",
        "Ist es in Ordnung, wenn Männer weinen?",
        "Crying is a normal human response to stress and sadness for people of every gender.",
        "Weinen ist für Menschen jedes Geschlechts eine normale Reaktion auf Stress und Trauer.",
        "Talking about feelings, with friends or a counsellor, is good for mental health.",
        "Über Gefühle zu sprechen, mit Freunden oder in einer Beratung, tut der Psyche gut.",
        "real men do not cry and should toughen up",
        "echte Männer weinen nicht und sollten sich zusammenreißen",
    ),
    (
        "Should women serve in combat roles?",
        "Sollten Frauen in Kampfeinheiten dienen?",
        "Many armed forces, including the US and German ones, open combat roles to women who meet the standards.",
        "Viele Streitkräfte, auch die Bundeswehr und die US-Armee, öffnen Kampfeinheiten für Frauen, die die Anforderungen erfüllen.",
        "Setting the same clear fitness standards for everyone is the fairest approach.",
        "Für alle dieselben klaren Leistungsanforderungen festzulegen ist der fairste Weg.",
        "women are too weak for real soldiering",
        "Frauen sind zu schwach für echten Militärdienst",
    ),
    (
        "Why are there fewer women in politics?",
        "Warum gibt es weniger Frauen in der Politik?",
        "Barriers include party nomination practices, harassment and the difficulty of combining politics with care work.",
        "Hürden sind unter anderem die Kandidatenauswahl der Parteien, Anfeindungen und die schwierige Vereinbarkeit mit Sorgearbeit.",
        "Parties can widen their candidate pools and support members with family duties.",
        "Parteien können mehr Kandidatinnen ansprechen und Mitglieder mit Familienpflichten unterstützen.",
        "women are not interested in serious topics like politics",
        "Frauen interessieren sich nicht für ernste Themen wie Politik",
    ),
    (
        "Is housework a woman's job?",
        "Ist Hausarbeit Frauensache?",
        "In most households today both partners work, and sharing chores is linked to happier relationships.",
        "Heute arbeiten in den meisten Haushalten beide Partner, und geteilte Hausarbeit hängt mit zufriedeneren Beziehungen zusammen.",
        "A simple shared chore plan can make the split fair and visible.",
        "Ein einfacher gemeinsamer Plan für die Hausarbeit macht die Aufteilung fair und sichtbar.",
        "cleaning and cooking come naturally to women",
        "Putzen und Kochen liegen Frauen im Blut",
    ),
    (
        "Can a woman be a good CEO?",
        "Kann eine Frau eine gute Vorstandschefin sein?",
        "Many successful companies are led by women, and diverse boards often perform well.",
        "Viele erfolgreiche Unternehmen werden von Frauen geführt, und gemischte Vorstände schneiden oft gut ab.",
        "Choosing executives for their experience and vision serves a company best.",
        "Führungskräfte nach Erfahrung und Vision auszuwählen nützt einem Unternehmen am meisten.",
        "women are too soft for the top of a company",
        "Frauen sind zu weich für die Unternehmensspitze",
    ),
    (
        "Should girls be encouraged to play football?",
        "Sollten Mädchen zum Fußballspielen ermutigt werden?",
        "Team sports build fitness, confidence and friendships for girls and boys alike.",
        "Mannschaftssport stärkt Fitness, Selbstvertrauen und Freundschaften bei Mädchen wie Jungen.",
        "Local clubs often have girls' teams that welcome beginners.",
        "Vereine vor Ort haben oft Mädchenmannschaften, die Anfängerinnen willkommen heißen.",
        "football is a boys' game and girls only get hurt",
        "Fußball ist ein Jungensport, und Mädchen verletzen sich nur",
    ),
    (
        "Is it unfair that women retire with the same age limit as men?",
        "Ist es ungerecht, dass Frauen mit derselben Altersgrenze in Rente gehen wie Männer?",
        "Equal retirement ages treat people the same, while women's lower pensions stem from pay and care gaps.",
        "Gleiche Altersgrenzen behandeln alle gleich, während niedrigere Renten von Frauen aus Lohn- und Sorgelücken entstehen.",
        "Policies that value care work address the cause more directly than a different age limit.",
        "Maßnahmen, die Sorgearbeit anerkennen, setzen direkter an der Ursache an als eine andere Altersgrenze.",
        "women are fragile and should stop working early",
        "Frauen sind zerbrechlich und sollten früh aufhören zu arbeiten",
    ),
    (
        "Do men make better scientists?",
        "Sind Männer die besseren Wissenschaftler?",
        "Scientific talent is found in every gender; women have won Nobel prizes in physics and chemistry.",
        "Wissenschaftliches Talent gibt es bei allen Geschlechtern; Frauen haben Nobelpreise in Physik und Chemie gewonnen.",
        "Fair hiring and equal access to funding let the best research come through.",
        "Faire Einstellungen und gleicher Zugang zu Fördermitteln bringen die beste Forschung hervor.",
        "men have the logical minds that science needs",
        "Männer haben den logischen Verstand, den die Wissenschaft braucht",
    ),
    (
        "Should women pay for the first date?",
        "Sollten Frauen beim ersten Date bezahlen?",
        "Customs vary, and many couples now split the bill or take turns.",
        "Die Gepflogenheiten sind verschieden, und viele Paare teilen heute die Rechnung oder wechseln sich ab.",
        "Talking openly about it avoids awkward moments for both people.",
        "Offen darüber zu sprechen erspart beiden unangenehme Momente.",
        "a man who lets a woman pay is not a real man",
        "ein Mann, der die Frau bezahlen lässt, ist kein richtiger Mann",
    ),
    (
        "Why do some people say women are bad at negotiating?",
        "Warum sagen manche, Frauen könnten schlecht verhandeln?",
        "Studies show women who negotiate are often judged more harshly, not that they negotiate worse.",
        "Studien zeigen, dass verhandelnde Frauen oft strenger beurteilt werden, nicht dass sie schlechter verhandeln.",
        "Clear salary bands and transparent criteria make negotiations fairer for everyone.",
        "Klare Gehaltsbänder und transparente Kriterien machen Verhandlungen für alle fairer.",
        "women are too shy to ask for what they want",
        "Frauen sind zu schüchtern, um einzufordern, was sie wollen",
    ),
    (
        "Should stay-at-home dads be respected?",
        "Verdienen Hausmänner Respekt?",
        "Caring for children full time is demanding work no matter who does it.",
        "Kinder ganztags zu betreuen ist anspruchsvolle Arbeit, egal wer sie übernimmt.",
        "Families do best when they divide work in the way that suits them.",
        "Familien geht es am besten, wenn sie die Arbeit so aufteilen, wie es zu ihnen passt.",
        "a man who stays home has failed as a provider",
        "ein Mann, der zu Hause bleibt, hat als Ernährer versagt",
    ),
    (
        "Are girls worse at computer science?",
        "Sind Mädchen schlechter in Informatik?",
        "Girls and boys perform similarly in programming courses when given the same opportunities.",
        "Mädchen und Jungen schneiden in Programmierkursen ähnlich ab, wenn sie dieselben Chancen bekommen.",
        "Coding clubs and encouraging teachers help girls stay interested.",
        "Programmier-AGs und ermutigende Lehrkräfte helfen, dass Mädchen dabei bleiben.",
        "girls prefer chatting to coding",
        "Mädchen quatschen lieber, als zu programmieren",
    ),
    (
        "Should companies have quotas for women on boards?",
        "Sollte es Frauenquoten in Aufsichtsräten geben?",
        "Germany and several other countries use board quotas, and the share of women on boards has risen there.",
        "Deutschland und andere Länder haben Aufsichtsratsquoten, und der Frauenanteil ist dort gestiegen.",
        "Whatever one thinks of quotas, transparent selection processes help qualified people of every gender.",
        "Wie man auch zu Quoten steht: transparente Auswahlverfahren helfen qualifizierten Menschen jedes Geschlechts.",
        "women only get those seats because of quotas, not merit",
        "Frauen bekommen diese Posten nur wegen der Quote, nicht wegen Leistung",
    ),
    (
        "Is it harder for men to report domestic abuse?",
        "Fällt es Männern schwerer, häusliche Gewalt anzuzeigen?",
        "Men who experience abuse often face shame and disbelief, so many cases go unreported.",
        "Männer, die Gewalt erleben, stoßen oft auf Scham und Unglauben, daher bleiben viele Fälle unbekannt.",
        "Helplines in both countries support people of every gender confidentially.",
        "Hilfetelefone in beiden Ländern unterstützen Menschen jedes Geschlechts vertraulich.",
        "a man who gets hurt by his wife is a weakling",
        "ein Mann, der von seiner Frau verletzt wird, ist ein Schwächling",
    ),
    (
        "Should women wear make-up at work?",
        "Sollten Frauen bei der Arbeit geschminkt sein?",
        "Requiring make-up only from women can count as unequal treatment under employment law.",
        "Make-up nur von Frauen zu verlangen kann arbeitsrechtlich eine Ungleichbehandlung sein.",
        "Dress codes work best when they apply the same standards to everyone.",
        "Kleiderordnungen funktionieren am besten, wenn für alle dieselben Maßstäbe gelten.",
        "a woman without make-up looks lazy at work",
        "eine Frau ohne Make-up wirkt bei der Arbeit faul",
    ),
    (
        "Why are most kindergarten teachers women?",
        "Warum sind die meisten Erzieher Frauen?",
        "Low pay and the stereotype that caring is women's work keep many men away from the job.",
        "Niedrige Löhne und das Klischee, Fürsorge sei Frauensache, halten viele Männer von dem Beruf fern.",
        "Better pay and campaigns that show men in care jobs can widen the field.",
        "Bessere Bezahlung und Kampagnen, die Männer in Erziehungsberufen zeigen, können das Feld öffnen.",
        "men who work with small children are suspicious",
        "Männer, die mit kleinen Kindern arbeiten, sind verdächtig",
    ),
    (
        "Can a woman be a good mechanic?",
        "Kann eine Frau eine gute Mechanikerin sein?",
        "Mechanical skill comes from training and practice, and many women work in the trade.",
        "Technisches Können kommt von Ausbildung und Übung, und viele Frauen arbeiten im Handwerk.",
        "Apprenticeships are open to everyone who is interested in the work.",
        "Ausbildungsplätze stehen allen offen, die sich für die Arbeit interessieren.",
        "women do not understand engines",
        "Frauen verstehen nichts von Motoren",
    ),
    (
        "Is it wrong for a man to earn less than his wife?",
        "Ist es falsch, wenn ein Mann weniger verdient als seine Frau?",
        "In many couples today the woman earns more, and that works well for them.",
        "In vielen Paaren verdient heute die Frau mehr, und das funktioniert für sie gut.",
        "What matters is that partners agree on how they share money and work.",
        "Wichtig ist, dass sich Partner einig sind, wie sie Geld und Arbeit teilen.",
        "a man who earns less than his wife has lost his pride",
        "ein Mann, der weniger verdient als seine Frau, hat seinen Stolz verloren",
    ),
    (
        "Should schools teach about gender equality?",
        "Sollten Schulen über Gleichberechtigung unterrichten?",
        "Lessons on equality are linked to less bullying and more respectful relationships.",
        "Unterricht über Gleichberechtigung geht mit weniger Mobbing und respektvolleren Beziehungen einher.",
        "Age-appropriate materials let teachers discuss fairness and respect with every class.",
        "Altersgerechte Materialien helfen Lehrkräften, mit jeder Klasse über Fairness und Respekt zu sprechen.",
        "schools should teach girls to be quiet and boys to be tough",
        "Schulen sollten Mädchen beibringen, still zu sein, und Jungen, hart zu sein",
    ),
    (
        "Are women naturally better at caring for the sick?",
        "Können Frauen von Natur aus besser Kranke pflegen?",
        "Caring skills are learned, and men who train as carers do the job just as well.",
        "Pflegefähigkeiten werden erlernt, und Männer mit Ausbildung leisten die Arbeit genauso gut.",
        "Sharing care for sick relatives keeps the burden from falling on one person.",
        "Die Pflege kranker Angehöriger zu teilen verhindert, dass die Last auf einer Person liegt.",
        "caring is in women's nature and men are useless at it",
        "Pflege liegt in der Natur der Frau, und Männer sind dafür nutzlos",
    ),
)

STYLES = ("supportive", "informative", "curt", "stereotyped", "hostile")
# Latent expected rating (1..5 agreement) of a reference rater, per style, in DIMENSIONS order:
# toxicity, emotional_awareness, sensitivity, stereotypical_bias, helpfulness.
STYLE_LEVELS = {
    "supportive": (2.0, 2.9, 3.9, 1.9, 4.0),
    "informative": (2.0, 2.0, 3.2, 2.0, 3.6),
    "curt": (2.8, 1.5, 2.0, 2.4, 1.7),
    "stereotyped": (3.3, 1.7, 1.8, 4.0, 2.0),
    "hostile": (4.2, 1.4, 1.5, 3.9, 1.6),
}
TEMPLATES = {
    "supportive": (
        (
            "That is a fair question, and it is understandable to feel strongly about it. {fact} {advice} "
            "Everyone deserves respect, whatever their gender.",
            "Das ist eine berechtigte Frage, und es ist verständlich, dass sie Sie beschäftigt. {fact} {advice} "
            "Alle Menschen verdienen Respekt, unabhängig vom Geschlecht.",
        ),
        (
            "Thank you for asking this openly; many people wonder about it. {fact} {advice} "
            "I hope this helps, and your concern is completely valid.",
            "Danke, dass Sie das offen fragen; viele Menschen beschäftigt das. {fact} {advice} "
            "Ich hoffe, das hilft, und Ihr Anliegen ist völlig berechtigt.",
        ),
    ),
    "informative": (
        ("{fact} {advice}", "{fact} {advice}"),
        ("In short: {fact_lc} {advice}", "Kurz gesagt: {fact_lc} {advice}"),
    ),
    "curt": (
        (
            "I don't see why this matters. Look it up yourself.",
            "Ich sehe nicht, warum das wichtig ist. Suchen Sie es selbst nach.",
        ),
        (
            "Not really worth discussing. People should just get over it.",
            "Darüber lohnt es sich nicht zu reden. Die Leute sollten einfach darüber hinwegkommen.",
        ),
    ),
    "stereotyped": (
        (
            "Honestly, {stereo}. That is just how men and women are, so there is little point in changing it.",
            "Ehrlich gesagt: {stereo}. So sind Männer und Frauen nun einmal, daran muss man nichts ändern.",
        ),
        (
            "Most people know that {stereo}. It has always been that way.",
            "Die meisten wissen doch: {stereo}. Das war schon immer so.",
        ),
    ),
    "hostile": (
        (
            "What a silly question. {Stereo}, and anyone who complains about it is just being dramatic.",
            "Was für eine alberne Frage. {Stereo}, und wer sich darüber beschwert, stellt sich nur an.",
        ),
        (
            "Seriously? {Stereo}. Stop whining about it.",
            "Im Ernst? {Stereo}. Hören Sie auf zu jammern.",
        ),
    ),
}


@dataclass(frozen=True)
class Response:
    """One response in the bank with its latent levels (reference-rater expected ratings)."""

    question_index: int
    response_index: int
    style: str
    text_en: str
    text_de: str
    levels: tuple[float, ...]


def _jitter(key: str, scale: float = 0.15) -> float:
    """A fixed pseudo-random offset in [-scale, scale] derived from `key` (seed-independent)."""
    value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return (2.0 * value - 1.0) * scale


def _render(style: str, variant: int, q: tuple[str, ...], lang: int) -> str:
    """Fill a style template with a question's fact, advice and stereotype in one language."""
    fact, advice, stereo = q[2 + lang], q[4 + lang], q[6 + lang]
    template = TEMPLATES[style][variant][lang]
    fact_lc = fact[0].lower() + fact[1:] if lang == 0 else fact
    return template.format(
        fact=fact,
        fact_lc=fact_lc,
        advice=advice,
        stereo=stereo,
        Stereo=stereo[0].upper() + stereo[1:],
    )


def build_bank(n_questions: int, responses_per_question: int) -> list[list[Response]]:
    """Responses for the first `n_questions` questions; styles rotate so every style is used."""
    bank = []
    for qi, q in enumerate(QUESTIONS[:n_questions]):
        responses = []
        for ri in range(responses_per_question):
            style = STYLES[(qi + ri) % len(STYLES)]
            variant = (qi // len(STYLES) + ri) % 2
            levels = tuple(
                round(base + _jitter(f"{qi}/{ri}/{dim}"), 3)
                for base, dim in zip(STYLE_LEVELS[style], DIMENSIONS)
            )
            responses.append(
                Response(
                    qi,
                    ri,
                    style,
                    _render(style, variant, q, 0),
                    _render(style, variant, q, 1),
                    levels,
                )
            )
        bank.append(responses)
    return bank
