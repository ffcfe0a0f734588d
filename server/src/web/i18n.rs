//! The pages' two languages. Every text exists in German and English by construction: one
//! table, one struct, both columns filled or it does not compile. The language comes from
//! `?lang=`, then the `lang` cookie, then `Accept-Language`; German is the default.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::content::I18n;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    De,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Self::De => "de",
            Self::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().get(..2)? {
            "de" => Some(Self::De),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// The API's `Language` value.
    pub fn graphql(self) -> &'static str {
        match self {
            Self::De => "DE",
            Self::En => "EN",
        }
    }

    /// The other language, for the switch in the header.
    pub fn other(self) -> Self {
        match self {
            Self::De => Self::En,
            Self::En => Self::De,
        }
    }

    /// `?lang=` (an explicit switch, remembered by the caller in a cookie), then the cookie,
    /// then the browser's preference.
    pub fn of(req: &HttpRequest) -> (Self, bool) {
        let from_query = req
            .query_string()
            .split('&')
            .filter_map(|kv| kv.strip_prefix("lang="))
            .find_map(Self::parse);
        if let Some(lang) = from_query {
            return (lang, true);
        }
        if let Some(lang) = req.cookie("lang").and_then(|c| Self::parse(c.value())) {
            return (lang, false);
        }
        let accept = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let preferred = accept
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let lang = Self::parse(it.next()?)?;
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((lang, q))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| l);
        (preferred.unwrap_or(Self::De), false)
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Self::De => &DE,
            Self::En => &EN,
        }
    }

    /// A content text in this language (German when it has no English).
    pub fn pick(self, text: &I18n) -> String {
        match self {
            Self::En => text.en.clone().unwrap_or_else(|| text.de.clone()),
            Self::De => text.de.clone(),
        }
    }

    /// An amount in cents as the language writes money: `120,00 €` / `€120.00`.
    pub fn money(self, cents: i64, currency: &str) -> String {
        let sign = if cents < 0 { "-" } else { "" };
        let (whole, rest) = (cents.abs() / 100, cents.abs() % 100);
        let symbol = if currency == "EUR" { "€" } else { currency };
        let grouped = group_thousands(whole, if self == Self::De { '.' } else { ',' });
        match self {
            Self::De => format!("{sign}{grouped},{rest:02} {symbol}"),
            Self::En => format!("{sign}{symbol}{grouped}.{rest:02}"),
        }
    }

    /// A calendar date (`2026-12-04`) as the language writes it.
    pub fn date(self, iso: &str) -> String {
        match chrono::NaiveDate::parse_from_str(iso.get(..10).unwrap_or(iso), "%Y-%m-%d") {
            Ok(d) => match self {
                Self::De => d.format("%d.%m.%Y").to_string(),
                Self::En => d.format("%-d %B %Y").to_string(),
            },
            Err(_) => iso.to_owned(),
        }
    }
}

fn group_thousands(n: i64, sep: char) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

macro_rules! texts {
    ($($name:ident: $de:expr, $en:expr;)*) => {
        /// Every fixed text of the pages.
        pub struct Texts { $(pub $name: &'static str,)* }
        pub const DE: Texts = Texts { $($name: $de,)* };
        pub const EN: Texts = Texts { $($name: $en,)* };
    };
}

texts! {
    other_language: "English", "Deutsch";
    skip_link: "Zum Inhalt springen", "Skip to content";
    portal_of: "Online-Dienste", "Online services";
    home: "Startseite", "Home";
    search_label: "Leistung suchen", "Search services";
    search_hint: "Zum Beispiel „Hund“ oder „Parkausweis“", "For example “dog” or “parking permit”";
    search_button: "Suchen", "Search";
    search_results_for: "Ergebnisse für", "Results for";
    no_services: "Keine passende Leistung gefunden.", "No matching service found.";
    all_services: "Alle Leistungen", "All services";
    services_by_category: "Leistungen nach Thema", "Services by topic";
    service_start: "Antrag starten", "Start application";
    service_who: "Wer kann den Antrag stellen?", "Who can apply?";
    service_who_default: "Alle, die in der Gemeinde wohnen oder hier ein Anliegen haben. Sie brauchen kein Konto.",
        "Anyone who lives in the municipality or has a matter here. You do not need an account.";
    service_fees: "Gebühren", "Fees";
    service_no_fees: "Für diese Leistung fallen keine Gebühren an.", "This service is free of charge.";
    service_fee_if: "nur wenn zutreffend", "only if it applies";
    service_fees_note: "Den genauen Betrag berechnen wir aus Ihren Angaben; Sie sehen ihn vor dem Absenden.",
        "We compute the exact amount from your details; you see it before you submit.";
    service_documents: "Benötigte Unterlagen", "Documents you need";
    service_no_documents: "Sie brauchen keine Unterlagen.", "You do not need any documents.";
    service_document_conditional: "nur in bestimmten Fällen", "only in some cases";
    service_appointment: "Termin", "Appointment";
    service_appointment_required: "Nach dem Antrag buchen Sie einen Termin vor Ort.", "After applying, you book an appointment in person.";
    service_appointment_optional: "Auf Wunsch können Sie nach dem Antrag einen Termin vor Ort buchen.", "If you wish, you can book an appointment in person after applying.";
    service_no_appointment: "Sie müssen nicht vorbeikommen.", "You do not need to come in person.";
    service_processing: "Bearbeitungszeit", "Processing time";
    service_processing_default: "Sie erhalten eine Eingangsbestätigung sofort und Nachricht, sobald sich etwas ändert.",
        "You get an acknowledgement at once and a message whenever something changes.";
    service_department: "Zuständige Stelle", "Responsible office";
    service_minutes: "Minuten", "minutes";
    step_of: "Schritt", "Step";
    step_of_total: "von", "of";
    next: "Weiter", "Continue";
    back: "Zurück", "Back";
    save_for_later: "Speichern und später fortsetzen", "Save and continue later";
    review_title: "Angaben prüfen", "Check your answers";
    review_intro: "Bitte prüfen Sie Ihre Angaben, bevor Sie den Antrag absenden.", "Please check your answers before you submit the application.";
    review_change: "Ändern", "Change";
    review_fees: "Zu zahlende Gebühren", "Fees to pay";
    review_total: "Summe", "Total";
    submit: "Antrag verbindlich absenden", "Submit application";
    not_answered: "Keine Angabe", "Not answered";
    yes: "Ja", "Yes";
    no: "Nein", "No";
    choose: "Bitte auswählen", "Please choose";
    optional: "(freiwillig)", "(optional)";
    documents_title: "Unterlagen", "Documents";
    documents_intro: "Laden Sie die folgenden Unterlagen hoch, als Foto oder Scan.", "Upload the following documents, as a photo or a scan.";
    documents_max_size: "Jede Datei darf höchstens so groß sein:", "Each file may be at most";
    documents_none_yet: "Noch keine Datei hochgeladen.", "No file uploaded yet.";
    documents_choose: "Datei auswählen", "Choose a file";
    documents_types: "Erlaubte Formate:", "Accepted formats:";
    documents_upload: "Hochladen", "Upload";
    only_if_note: "Nur ausfüllen, wenn es auf Sie zutrifft.", "Only answer if it applies to you.";
    entry: "Eintrag", "Entry";
    add_entry: "Weiteren Eintrag hinzufügen", "Add another entry";
    remove_entry: "Entfernen", "Remove";
    error_summary_title: "Bitte korrigieren Sie Folgendes:", "Please correct the following:";
    error_prefix: "Fehler:", "Error:";
    saved_title: "Ihr Antrag ist gespeichert", "Your application is saved";
    saved_intro: "Mit diesem Link setzen Sie den Antrag später fort. Bewahren Sie ihn sorgfältig auf: Wir zeigen ihn nur dieses eine Mal, und wer ihn kennt, kann Ihre Angaben sehen.",
        "Use this link to continue later. Keep it safe: we show it only this once, and anyone who has it can see your details.";
    saved_continue: "Jetzt weiter ausfüllen", "Continue now";
    resume_link: "Link zum Fortsetzen", "Link to continue";
    submitted_title: "Antrag eingegangen", "Application received";
    submitted_reference: "Ihr Aktenzeichen", "Your reference number";
    submitted_status_link: "Unter diesem Link sehen Sie jederzeit den Stand Ihres Antrags und Nachrichten der Verwaltung. Wir zeigen ihn nur dieses eine Mal.",
        "This link shows the status of your application and messages from the administration at any time. We show it only this once.";
    status_title: "Stand Ihres Antrags", "Status of your application";
    status_state: "Status", "Status";
    status_submitted_at: "Eingegangen am", "Received on";
    status_timeline: "Verlauf", "History";
    status_messages: "Nachrichten", "Messages";
    status_no_messages: "Noch keine Nachrichten.", "No messages yet.";
    status_fees: "Gebühren", "Fees";
    provide_title: "Die Verwaltung bittet Sie um weitere Angaben", "The office asks you for more information";
    provide_label: "Ihre Antwort", "Your answer";
    provide_send: "Angaben senden", "Send information";
    message_label: "Nachricht an die Verwaltung", "Message to the office";
    message_send: "Nachricht senden", "Send message";
    pay_title: "Gebühren bezahlen", "Pay the fees";
    pay_first: "Wir bearbeiten Ihren Antrag, sobald die Gebühren bezahlt sind.", "We process your application once the fees are paid.";
    pay_amount: "Zu zahlen:", "To pay:";
    pay_online: "Online bezahlen", "Pay online";
    pay_on_site: "An der Kasse bezahlen", "Pay at the counter";
    pay_on_site_pending: "Sie zahlen an der Kasse. Nennen Sie dort Ihr Aktenzeichen.", "You pay at the counter. Give your reference number there.";
    payments_title: "Zahlungen", "Payments";
    payment_paid: "bezahlt am", "paid on";
    payment_pending: "offen", "open";
    payment_refunded: "erstattet", "refunded";
    payment_ended: "abgebrochen oder abgelaufen", "cancelled or expired";
    payment_returned: "Vielen Dank. Sobald der Zahlungsdienst die Zahlung bestätigt, sehen Sie sie hier.", "Thank you. As soon as the payment service confirms the payment, you see it here.";
    payment_cancelled: "Die Zahlung wurde abgebrochen. Sie können es jederzeit erneut versuchen.", "The payment was cancelled. You can try again at any time.";
    appt_title: "Termin buchen", "Book an appointment";
    appt_link: "Termin vor Ort buchen", "Book an appointment in person";
    appt_days: "Tage mit freien Terminen", "Days with free slots";
    appt_earlier: "Frühere Tage", "Earlier days";
    appt_later: "Spätere Tage", "Later days";
    appt_slots_on: "Freie Termine am", "Free slots on";
    appt_none: "An diesem Tag ist kein Termin frei. Wählen Sie einen anderen Tag.", "There is no free slot on this day. Choose another day.";
    appt_name: "Ihr Name", "Your name";
    appt_email: "Ihre E-Mail-Adresse (für die Bestätigung)", "Your email address (for the confirmation)";
    appt_book: "Termin verbindlich buchen", "Book this appointment";
    appt_yours: "Ihr Termin", "Your appointment";
    appt_booked: "Ihr Termin ist gebucht.", "Your appointment is booked.";
    appt_booked_note: "Die Bestätigung mit Kalenderdatei und einem Link zum Verschieben oder Absagen kommt per E-Mail.", "The confirmation with a calendar file and a link to move or cancel it comes by email.";
    appt_when: "Wann", "When";
    appt_where: "Wo", "Where";
    appt_ics: "In den Kalender übernehmen (.ics)", "Add to calendar (.ics)";
    appt_cancel: "Termin absagen", "Cancel the appointment";
    appt_cancelled: "Dieser Termin ist abgesagt.", "This appointment is cancelled.";
    appt_move: "Termin verschieben", "Move the appointment";
    appt_move_button: "Auf den gewählten Termin verschieben", "Move to the chosen slot";
    status_open: "Zum Antrag", "Open application";
    not_found_title: "Seite nicht gefunden", "Page not found";
    not_found_text: "Diese Seite gibt es nicht (mehr). Vielleicht ist der Link abgelaufen oder unvollständig.",
        "This page does not exist (any more). The link may have expired or be incomplete.";
    forbidden_title: "Kein Zugriff", "No access";
    forbidden_text: "Sie haben keinen Zugriff auf diese Seite. Öffnen Sie den Link aus Ihrer E-Mail oder Bestätigung erneut.",
        "You do not have access to this page. Open the link from your email or confirmation again.";
    expired_title: "Formular abgelaufen", "Form expired";
    expired_text: "Aus Sicherheitsgründen konnten wir das Formular nicht annehmen. Laden Sie die Seite neu und senden Sie es noch einmal ab. Ihre gespeicherten Angaben bleiben erhalten.",
        "For your security we could not accept the form. Reload the page and send it again. What you saved is kept.";
    rate_limited_title: "Zu viele Anfragen", "Too many requests";
    rate_limited_text: "Bitte warten Sie einen Moment und versuchen Sie es dann erneut.", "Please wait a moment, then try again.";
    insufficient_assurance_title: "Höheres Vertrauensniveau nötig", "Higher level of assurance needed";
    insufficient_assurance_text: "Für diesen Online-Dienst reicht Ihre Anmeldung nicht aus: Er verlangt ein höheres Vertrauensniveau, zum Beispiel die Anmeldung mit dem Online-Ausweis oder einem ELSTER-Zertifikat. Melden Sie sich ab und mit einem solchen Zugang erneut an. Es wurde nichts gespeichert.",
        "Your sign-in is not enough for this online service: it requires a higher level of assurance, for example signing in with the online ID card or an ELSTER certificate. Sign out and sign in again with such a means. Nothing was saved.";
    internal_title: "Technischer Fehler", "Technical error";
    internal_text: "Entschuldigung, etwas ist schiefgegangen. Ihre gespeicherten Angaben bleiben erhalten. Bitte versuchen Sie es später erneut.",
        "Sorry, something went wrong. What you saved is kept. Please try again later.";
    back_to_start: "Zur Startseite", "Back to the start page";
    footer_api: "Programmierschnittstelle (GraphQL)", "Programming interface (GraphQL)";
    municipalities: "Kommunen", "Municipalities";
    platform_title: "Amtsplatz – Online-Dienste der Kommunen", "Amtsplatz – municipal online services";
    platform_intro: "Wählen Sie Ihre Kommune:", "Choose your municipality:";
    sign_in: "Anmelden", "Sign in";
    sign_out: "Abmelden", "Sign out";
    signed_in_as: "Angemeldet als", "Signed in as";
    signed_in: "Angemeldet", "Signed in";
    sign_in_failed_title: "Anmeldung nicht abgeschlossen", "Sign-in not completed";
    sign_in_failed_text: "Die Anmeldung konnte nicht abgeschlossen werden, zum Beispiel weil sie abgebrochen wurde oder zu lange gedauert hat. Versuchen Sie es bitte noch einmal.",
        "The sign-in could not be completed, for example because it was cancelled or took too long. Please try again.";
    sign_in_unavailable_title: "Anmeldung zurzeit nicht möglich", "Sign-in not available right now";
    sign_in_unavailable_text: "Das Anmeldeverfahren ist gerade nicht erreichbar. Sie können Leistungen ohne Anmeldung nutzen oder es später erneut versuchen.",
        "The sign-in service cannot be reached right now. You can use services without signing in, or try again later.";
    mine_title: "Meine Anträge", "My applications";
    mine_drafts: "Entwürfe", "Drafts";
    mine_no_drafts: "Sie haben keine gespeicherten Entwürfe.", "You have no saved drafts.";
    mine_applications: "Gestellte Anträge", "Submitted applications";
    mine_no_applications: "Sie haben hier noch keinen Antrag gestellt.", "You have not submitted an application here yet.";
    mine_saved_at: "Zuletzt gespeichert", "Last saved";
    mine_submitted_at: "Gestellt am", "Submitted on";
    mine_continue: "Weiter ausfüllen", "Continue";
    mine_service: "Leistung", "Service";
    mine_reference: "Aktenzeichen", "Reference";
    mine_state: "Stand", "Status";
    mine_awaiting_payment: "Zahlung offen", "Payment due";
    saved_signed_in: "Sie finden den Entwurf jederzeit unter „Meine Anträge“, solange Sie angemeldet sind.",
        "You find the draft under “My applications” whenever you are signed in.";
}

/// Messages for form errors, in the page's language, from the field's label and schema: the
/// API's own messages are for developers and in English.
pub fn field_error(lang: Lang, label: &str, schema: &serde_json::Value, api: &str) -> String {
    let de = lang == Lang::De;
    if api == "is required" {
        return if de {
            format!("Bitte geben Sie „{label}“ an.")
        } else {
            format!("Enter “{label}”.")
        };
    }
    if api.starts_with("is not a field") {
        return if de {
            format!("„{label}“ gehört nicht zu diesem Formular.")
        } else {
            format!("“{label}” is not part of this form.")
        };
    }
    let ty = schema.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let num = |k: &str| schema.get(k).and_then(serde_json::Value::as_f64);
    let range = match (num("minimum"), num("maximum")) {
        (Some(a), Some(b)) if de => format!(" zwischen {a} und {b}"),
        (Some(a), Some(b)) => format!(" between {a} and {b}"),
        (Some(a), None) if de => format!(" ab {a}"),
        (Some(a), None) => format!(" of at least {a}"),
        (None, Some(b)) if de => format!(" bis {b}"),
        (None, Some(b)) => format!(" of at most {b}"),
        (None, None) => String::new(),
    };
    if schema.get("enum").is_some() || schema.get("oneOf").is_some() {
        return if de {
            format!("Wählen Sie bei „{label}“ eine der Möglichkeiten aus.")
        } else {
            format!("Choose one of the options for “{label}”.")
        };
    }
    match ty {
        "integer" => {
            if de {
                format!("Geben Sie bei „{label}“ eine ganze Zahl{range} ein.")
            } else {
                format!("Enter a whole number{range} for “{label}”.")
            }
        }
        "number" => {
            let step = num("multipleOf")
                .map(|m| {
                    if de {
                        format!(" in Schritten von {}", m.to_string().replace('.', ","))
                    } else {
                        format!(" in steps of {m}")
                    }
                })
                .unwrap_or_default();
            if de {
                format!("Geben Sie bei „{label}“ eine Zahl{range}{step} ein.")
            } else {
                format!("Enter a number{range}{step} for “{label}”.")
            }
        }
        "boolean" => {
            if de {
                format!("Wählen Sie bei „{label}“ Ja oder Nein.")
            } else {
                format!("Choose Yes or No for “{label}”.")
            }
        }
        _ => match schema.get("format").and_then(|f| f.as_str()) {
            Some("date") => {
                if de {
                    format!("Geben Sie bei „{label}“ ein gültiges Datum ein.")
                } else {
                    format!("Enter a real date for “{label}”.")
                }
            }
            Some("email") => {
                if de {
                    format!(
                        "Geben Sie bei „{label}“ eine E-Mail-Adresse ein, z. B. name@beispiel.de."
                    )
                } else {
                    format!("Enter an email address like name@example.com for “{label}”.")
                }
            }
            _ => {
                let max = schema.get("maxLength").and_then(serde_json::Value::as_u64);
                let min = schema.get("minLength").and_then(serde_json::Value::as_u64);
                match (api.contains("longer"), api.contains("shorter"), max, min) {
                    (true, _, Some(max), _) if de => {
                        format!("„{label}“ darf höchstens {max} Zeichen lang sein.")
                    }
                    (true, _, Some(max), _) => {
                        format!("“{label}” must be {max} characters or fewer.")
                    }
                    (_, true, _, Some(min)) if de => {
                        format!("„{label}“ muss mindestens {min} Zeichen lang sein.")
                    }
                    (_, true, _, Some(min)) => {
                        format!("“{label}” must be at least {min} characters.")
                    }
                    _ if de => format!(
                        "Das Format von „{label}“ stimmt nicht. Bitte prüfen Sie die Eingabe."
                    ),
                    _ => format!("“{label}” is not in the right format. Please check it."),
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_as_each_language_writes_it() {
        assert_eq!(Lang::De.money(12000, "EUR"), "120,00 €");
        assert_eq!(Lang::En.money(12000, "EUR"), "€120.00");
        assert_eq!(Lang::De.money(123_456_789, "EUR"), "1.234.567,89 €");
        assert_eq!(Lang::En.money(5, "CHF"), "CHF0.05");
    }

    #[test]
    fn dates_follow_the_language() {
        assert_eq!(Lang::De.date("2026-12-04"), "04.12.2026");
        assert_eq!(Lang::En.date("2026-12-04T10:00:00Z"), "4 December 2026");
        assert_eq!(Lang::De.date("kein Datum"), "kein Datum");
    }

    #[test]
    fn errors_name_the_field_and_what_is_expected() {
        let int = serde_json::json!({"type": "integer", "minimum": 1, "maximum": 20});
        assert_eq!(
            field_error(Lang::De, "Anzahl", &int, "\"x\" is not of type \"integer\""),
            "Geben Sie bei „Anzahl“ eine ganze Zahl zwischen 1 und 20 ein."
        );
        assert_eq!(
            field_error(Lang::En, "Name", &int, "is required"),
            "Enter “Name”."
        );
        let text = serde_json::json!({"type": "string", "maxLength": 5});
        assert_eq!(
            field_error(
                Lang::De,
                "PLZ",
                &text,
                "\"123456\" is longer than 5 characters"
            ),
            "„PLZ“ darf höchstens 5 Zeichen lang sein."
        );
    }
}
